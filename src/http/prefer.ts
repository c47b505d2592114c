/**
 * The `wait` preference of RFC 7240 (`Prefer: wait=10`, possibly among other
 * preferences), in whole seconds, capped at `maxSeconds`. 0 when absent or malformed:
 * an unusable preference is ignored, as the RFC asks.
 */
export function parsePreferWait(header: string | string[] | undefined, maxSeconds: number): number {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const value of values) {
    for (const preference of value.split(',')) {
      const match = /^\s*wait\s*=\s*"?(\d{1,6})"?\s*(?:;.*)?$/i.exec(preference);
      if (match) return Math.min(Number(match[1]), maxSeconds);
    }
  }
  return 0;
}
