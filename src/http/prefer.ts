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

/**
 * Runs `work` with a signal that aborts when the client's connection closes,
 * so a `Prefer: wait` whose client went away stops reading its row and gives
 * its waiting slot back at once instead of holding it until the wait elapses.
 */
export async function whileConnected<T>(socket: Pick<NodeJS.EventEmitter, 'once' | 'off'> & { destroyed: boolean }, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onClose = () => controller.abort();
  if (socket.destroyed) controller.abort();
  else socket.once('close', onClose);
  try {
    return await work(controller.signal);
  } finally {
    socket.off('close', onClose);
  }
}
