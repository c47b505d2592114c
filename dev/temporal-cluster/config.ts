/**
 * The server's static config for a local cluster: PostgreSQL persistence and
 * visibility, numHistoryShards, and a gRPC port plus a membership port for each
 * service, all on 127.0.0.1. The services find each other through the
 * cluster_membership table of the persistence database, so no seed list.
 */
import { CLUSTER_DATABASES, type PostgresEndpoint } from './schema';

export const CLUSTER_SERVICES = ['frontend', 'history', 'matching', 'worker'] as const;
export type ClusterService = (typeof CLUSTER_SERVICES)[number];

export interface ServicePorts {
  grpc: number;
  membership: number;
  /** Frontend only: the HTTP API. */
  http?: number;
}

export interface ClusterConfigOptions {
  postgres: PostgresEndpoint;
  ports: Record<ClusterService, ServicePorts>;
  /** Default 4: above one so workflows spread over shards as on a real cluster, small enough for 2 cores. */
  numHistoryShards?: number;
  /** Path of the dynamic config file the services poll. */
  dynamicConfigFile: string;
  /** Server log level; default warn. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

/** The config as an object; YAML is a superset of JSON, so its JSON text is a valid config file. */
export function clusterConfig(options: ClusterConfigOptions): Record<string, unknown> {
  const datastore = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${options.postgres.host}:${options.postgres.port}`,
      connectProtocol: 'tcp',
      user: options.postgres.user,
      password: options.postgres.password,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const frontend = options.ports.frontend;
  return {
    log: { stdout: true, level: options.logLevel ?? 'warn', format: 'json' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: options.numHistoryShards ?? 4,
      datastores: {
        // Four processes each open up to this many: 4 × (8 + 2) = 40 of PostgreSQL's default 100, which Onceflow shares.
        'postgres-default': datastore(CLUSTER_DATABASES.persistence, 8),
        'postgres-visibility': datastore(CLUSTER_DATABASES.visibility, 2),
      },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services: Object.fromEntries(
      Object.entries(options.ports).map(([service, ports]) => [
        service,
        { rpc: { grpcPort: ports.grpc, membershipPort: ports.membership, bindOnLocalHost: true, ...(ports.http ? { httpPort: ports.http } : {}) } },
      ]),
    ),
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `127.0.0.1:${frontend.grpc}`, httpAddress: `127.0.0.1:${frontend.http}` },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: options.dynamicConfigFile, pollInterval: '10s' },
  };
}

/**
 * Dynamic config: empty on purpose, so the cluster runs the server's
 * production defaults (the dev server's one-shard poll-rate tuning is not
 * needed with four shards). The file exists so an operator can tune a live
 * cluster without a restart.
 */
export const DYNAMIC_CONFIG = '# Temporal dynamic config for the local cluster (polled every 10 s). Empty: production defaults.\n{}\n';
