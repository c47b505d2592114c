/**
 * The Gemini models an operation tries, in order: the requested model first,
 * then the configured chain (GEMINI_MODELS), each once. Resolved when the
 * workflow starts (src/operations/starter.ts) and carried in its input, so the
 * workflow spends no round trip on it and a config change never alters a run
 * in flight.
 */
export function modelChainFor(requested: string | undefined, configured: readonly string[]): string[] {
  return [...new Set([...(requested ? [requested] : []), ...configured])];
}
