/**
 * What a local stack reports as the reason it stops: the first exit, except
 * that a server's keeper is blamed over a role when both go. A role often
 * exits because a server it uses went away: when a Temporal service dies, its
 * keeper stops the rest of the cluster before it exits itself, and the worker,
 * its connection refused meanwhile, can exit first. So a role's exit waits up
 * to `graceMs` for a keeper's; a keeper's exit is reported at once.
 */
export async function firstFailure<R>(roleExits: Promise<R>[], keeperExits: Promise<R>[], graceMs: number): Promise<R> {
  const keeper = keeperExits.length > 0 ? Promise.race(keeperExits) : new Promise<R>(() => undefined);
  const first = await Promise.race([keeper.then((reason) => ({ reason, fromKeeper: true })), Promise.race(roleExits).then((reason) => ({ reason, fromKeeper: false }))]);
  if (first.fromKeeper) return first.reason;
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<R>((resolve) => {
    timer = setTimeout(() => resolve(first.reason), graceMs);
  });
  try {
    return await Promise.race([keeper, grace]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long a role's exit waits for a keeper's (a cluster keeper stops three more services first). */
export const KEEPER_EXIT_GRACE_MS = 15_000;
