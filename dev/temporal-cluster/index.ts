/** Build-or-reuse the server, then run the cluster on a given PostgreSQL. */
import path from 'node:path';
import { ensureTemporalServer } from './build';
import { startTemporalCluster, type StartTemporalClusterOptions, type TemporalCluster } from './cluster';

export { TEMPORAL_SERVER_VERSION } from './build';
export type { TemporalCluster } from './cluster';

export interface StartLocalClusterOptions extends Omit<StartTemporalClusterOptions, 'tools'> {
  /** `<stateDir>/tools`, where the server build is kept. */
  toolsDir: string;
}

export async function startLocalCluster(options: StartLocalClusterOptions): Promise<TemporalCluster> {
  const tools = await ensureTemporalServer({ toolsDir: options.toolsDir, log: options.log });
  return startTemporalCluster({ ...options, tools, dir: path.resolve(options.dir) });
}
