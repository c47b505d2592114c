/**
 * The cluster of the test tier, the benchmarks and the fault suite: build or
 * reuse the server (and the UI server), then run it on a given PostgreSQL
 * under a keeper (../keeper.ts), so a SIGKILLed harness leaves no service
 * behind. The handle kills and starts single services through the keeper,
 * which therefore knows a fault scenario's kill from a crash.
 */
import path from 'node:path';
import { keepTemporalCluster, type KeeperOptions, type KeptClusterInfo, type KeptClusterOptions, type Keeper, type ServiceState } from '../keeper';
import { ensureTemporalServer, ensureTemporalUi } from './build';
import { CLUSTER_SERVICES, type ClusterService } from './config';
import type { ClusterUiOptions } from './ui';

export { TEMPORAL_SERVER_VERSION, TEMPORAL_UI_VERSION } from './build';

export interface KeptClusterService {
  service: ClusterService;
  /** As the keeper last reported it. */
  pid(): number | undefined;
  alive(): boolean;
  /** Signals the service through the keeper (not a crash to it); resolves once it has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Starts the service again with the same config and ports; resolves once it is spawned. */
  start(): Promise<void>;
}

export interface KeptCluster {
  /** The frontend's gRPC address, what TEMPORAL_ADDRESS points at. */
  address: string;
  namespace: string;
  uiUrl: string | null;
  logDir: string;
  services: Record<ClusterService, KeptClusterService>;
  keeper: Keeper<KeptClusterInfo>;
  /** Resolves once all four services are members of the ring and the namespace serves. */
  waitUntilServing(): Promise<void>;
  /** Stops every service (the keeper stays); the state stays in PostgreSQL. */
  stopServices(): Promise<void>;
  /** Starts every service that is down and waits until the cluster serves. */
  startServices(): Promise<void>;
  /** Stops the services and the keeper. */
  stop(): Promise<void>;
}

export interface KeepLocalClusterOptions extends Omit<KeptClusterOptions, 'tools' | 'ui'> {
  /** `<stateDir>/tools`, where the server build is kept. */
  toolsDir: string;
  /** Also build (once) and run the Web UI server; default no UI. */
  ui?: Omit<ClusterUiOptions, 'binary'>;
  /** Build progress (a first build takes minutes); the services log to `<dir>/logs`. */
  log?: (line: string) => void;
  /** The keeper's own log. */
  keeper: KeeperOptions;
}

export async function keepLocalCluster(options: KeepLocalClusterOptions): Promise<KeptCluster> {
  const { toolsDir, log, keeper: keeperOptions, ...clusterOptions } = options;
  // Built here, not in the keeper, so the minutes of a first build show up in the harness's output.
  const tools = await ensureTemporalServer({ toolsDir, log });
  const ui = options.ui ? { ...options.ui, binary: (await ensureTemporalUi({ toolsDir, log })).binary } : undefined;
  // Four services stop one after another, each with up to 10 s of grace.
  const keeper = await keepTemporalCluster({ ...clusterOptions, tools, ui, dir: path.resolve(options.dir) }, { stopTimeoutMs: 90_000, ...keeperOptions });
  const states = new Map<ServiceState['service'], ServiceState>(keeper.info.services.map((state) => [state.service, state]));
  keeper.onServiceState((state) => states.set(state.service, state));
  // A keeper that is gone runs nothing, whatever it reported last.
  let keeperGone = false;
  void keeper.exited.then(() => (keeperGone = true));
  const alive = (service: ClusterService) => !keeperGone && (states.get(service)?.alive ?? false);
  const services = Object.fromEntries(
    CLUSTER_SERVICES.map((service): [ClusterService, KeptClusterService] => [
      service,
      {
        service,
        pid: () => (alive(service) ? (states.get(service)?.pid ?? undefined) : undefined),
        alive: () => alive(service),
        kill: (signal) => keeper.command({ action: 'kill-service', service, signal }),
        start: () => keeper.command({ action: 'start-service', service }),
      },
    ]),
  ) as Record<ClusterService, KeptClusterService>;
  return {
    address: keeper.info.address,
    namespace: keeper.info.namespace,
    uiUrl: keeper.info.uiUrl,
    logDir: keeper.info.logDir,
    services,
    keeper,
    waitUntilServing: () => keeper.command({ action: 'wait-until-serving' }),
    stopServices: () => keeper.command({ action: 'stop-server' }),
    startServices: () => keeper.command({ action: 'start-server' }),
    stop: () => keeper.stop(),
  };
}
