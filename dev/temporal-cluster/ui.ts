/**
 * The Temporal Web UI for the local cluster. The `temporal` CLI's UI only
 * runs inside its dev server; a cluster gets the standalone UI server
 * (github.com/temporalio/ui-server, the program of the `temporalio/ui`
 * image), built from the Go module proxy like the server itself
 * (build.ts ensureTemporalUi) and pointed at the cluster's frontend.
 */

export interface ClusterUiOptions {
  /** The UI server binary (ensureTemporalUi). */
  binary: string;
  /** HTTP port the UI listens on (127.0.0.1). */
  port: number;
  /**
   * Onceflow's codec endpoint (`http://<api>/codec`) when ONCEFLOW_CODEC_TOKEN
   * is set, so the UI shows decrypted payloads; default none.
   */
  codecEndpoint?: string;
}

export interface UiConfigOptions {
  frontendAddress: string;
  port: number;
  namespace: string;
  codecEndpoint?: string;
}

/** The file name the server loads for `--env onceflow` (besides an absent base.yaml). */
export const UI_CONFIG_ENV = 'onceflow';

/** The UI server's config (its YAML reads this JSON). Fields as in the module's config/base.yaml. */
export function uiConfig(options: UiConfigOptions): Record<string, unknown> {
  return {
    temporalGrpcAddress: options.frontendAddress,
    host: '127.0.0.1',
    port: options.port,
    // served at the root, as the dev server's UI is: links.temporalUi and the docs assume it
    publicPath: '',
    enableUi: true,
    defaultNamespace: options.namespace,
    // Plain HTTP on loopback: a Secure CSRF cookie would never be set, and every
    // write action of the UI (terminate, cancel, signal) would be refused.
    cors: { cookieInsecure: true, allowOrigins: [], unsafeAllowAllOrigins: false },
    // No internet on the machines Onceflow is built on; the UI would otherwise fetch release news.
    disableNewsFetch: true,
    notifyOnNewVersion: false,
    auth: { enabled: false },
    // includeCredentials: the codec endpoint takes the operator's Basic credential,
    // which the browser sends cross-origin only when the UI asks it to.
    codec: options.codecEndpoint ? { endpoint: options.codecEndpoint, includeCredentials: true } : { endpoint: '' },
  };
}

/** Arguments of the UI server for a config directory holding `<UI_CONFIG_ENV>.yaml`. */
export function uiServerArgs(configDir: string): string[] {
  return ['--root', configDir, '--config', '.', '--env', UI_CONFIG_ENV, 'start'];
}
