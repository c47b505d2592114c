/** Build-or-reuse the server (and the UI server), then run the cluster on a given PostgreSQL. */
import path from 'node:path';
import { ensureTemporalServer, ensureTemporalUi } from './build';
import { startTemporalCluster, type StartTemporalClusterOptions, type TemporalCluster } from './cluster';
import type { ClusterUiOptions } from './ui';

export { TEMPORAL_SERVER_VERSION, TEMPORAL_UI_VERSION } from './build';
export type { TemporalCluster } from './cluster';

export interface StartLocalClusterOptions extends Omit<StartTemporalClusterOptions, 'tools' | 'ui'> {
  /** `<stateDir>/tools`, where the server build is kept. */
  toolsDir: string;
  /** Also build (once) and run the Web UI server; default no UI. */
  ui?: Omit<ClusterUiOptions, 'binary'>;
}

export async function startLocalCluster(options: StartLocalClusterOptions): Promise<TemporalCluster> {
  const tools = await ensureTemporalServer({ toolsDir: options.toolsDir, log: options.log });
  const ui = options.ui ? { ...options.ui, binary: (await ensureTemporalUi({ toolsDir: options.toolsDir, log: options.log })).binary } : undefined;
  return startTemporalCluster({ ...options, tools, ui, dir: path.resolve(options.dir) });
}
