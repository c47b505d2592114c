import { isIP } from 'node:net';
import type { Webhook } from 'standardwebhooks';
import { Agent, buildConnector, errors, type Dispatcher } from 'undici';
import type { AddressPolicy } from './address-policy';
import { AppError } from '../errors';

export interface WebhookClientOptions {
  /**
   * Connections kept per subscriber origin (host and port). Requests beyond it
   * wait for a free connection, and that wait counts against their timeout.
   * Default 64.
   */
  maxConnectionsPerOrigin?: number;
  /**
   * Checked on every connection, on the address the socket is about to
   * connect to (see AddressPolicy.lookup). Required: a client without it
   * would post wherever a subscription's DNS points.
   */
  addressPolicy: AddressPolicy;
}

export interface PostOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Covers everything: waiting for a connection, connecting, sending, the answer and its body. */
  timeoutMs: number;
}

/** Thrown when a post did not finish within its timeout. */
export class WebhookTimeoutError extends AppError<{ timeoutMs: number; sent: boolean }> {
  override readonly name = 'WebhookTimeoutError';
  /**
   * @param sent false when the request was still waiting for a free
   *   connection: nothing reached the subscriber.
   */
  constructor(readonly timeoutMs: number, readonly sent: boolean) {
    super(sent ? `timed out after ${timeoutMs} ms` : `timed out after ${timeoutMs} ms waiting for a free connection (not sent)`, { context: { timeoutMs, sent } });
  }
}

/**
 * POSTs webhook deliveries over kept-alive connections with undici's Agent
 * (a pool per origin). The relay is CPU-bound and the HTTP client was most of
 * its time: measured on this workload, fetch spent about 0.75 ms of CPU per
 * request, node:http 0.14–0.18 ms, undici's dispatcher 0.07–0.11 ms.
 *
 * Redirects are not followed (undici follows none unless asked): a 3xx is a
 * failed delivery, as with other webhook senders, so a body is never re-sent
 * somewhere the subscription does not name.
 */
export class WebhookClient {
  private readonly agent: Agent;

  constructor(options: WebhookClientOptions) {
    const policy = options.addressPolicy;
    const connectChecked = buildConnector({ lookup: policy.lookup });
    this.agent = new Agent({
      // Names go through the policy's lookup before the socket opens; an IP
      // literal skips lookup in net.connect, so it is checked here. Either
      // way the socket connects only to an address the policy passed, which
      // is what defeats DNS rebinding (a check of the name at create time
      // alone would not).
      connect: (connectOptions, callback) => {
        const host = connectOptions.hostname.replace(/^\[(.*)\]$/, '$1');
        if (isIP(host)) {
          try {
            policy.check(host, host);
          } catch (error) {
            return callback(error as Error, null);
          }
        }
        return connectChecked(connectOptions, callback);
      },
      connections: options.maxConnectionsPerOrigin ?? 64,
      // Close idle connections before a subscriber's keep-alive timeout would
      // (Node's default is 5 s; undici also honours a Keep-Alive: timeout= hint
      // from the subscriber), so we rarely write into a socket being closed.
      keepAliveTimeout: 4_000,
      // Our own timer covers the whole exchange (see PostOptions.timeoutMs).
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /** Resolves with the answer's status once its body has been read; rejects on a network error or the timeout. */
  async post(options: PostOptions): Promise<number> {
    const deadline = Date.now() + options.timeoutMs;
    try {
      return await this.once(options, options.timeoutMs);
    } catch (error) {
      // A kept-alive connection the subscriber closed just as we wrote to it
      // fails the request with "other side closed" and no answer. Send once
      // more on a fresh connection rather than book a failed attempt and a
      // backoff; if the first one did reach the subscriber, the webhook-id is
      // the same and its inbox drops the repeat.
      const left = deadline - Date.now();
      if (!(error instanceof errors.SocketError) || left <= 0) throw error;
      return this.once(options, left);
    }
  }

  private once(options: PostOptions, timeoutMs: number): Promise<number> {
    const url = new URL(options.url);
    return new Promise<number>((resolve, reject) => {
      let sent = false;
      let timedOut: WebhookTimeoutError | undefined;
      let abort: ((reason: Error) => void) | undefined;
      let status = 0;
      const timer = setTimeout(() => {
        timedOut = new WebhookTimeoutError(options.timeoutMs, sent);
        // Still queued for a connection: onRequestStart aborts it before a byte is written.
        abort?.(timedOut);
        reject(timedOut);
      }, timeoutMs);
      // undici's handler interface rather than its request() helper: only
      // the handler learns when the request leaves the queue for a
      // connection, which is what tells "timed out on the wire" (the
      // subscriber may have it) from "never sent".
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(controller) {
          if (timedOut) return controller.abort(timedOut);
          sent = true;
          abort = (reason) => controller.abort(reason);
        },
        onResponseStart(_controller, statusCode) {
          status = statusCode;
        },
        // The body is not used; undici reads and drops it so the connection can be reused.
        onResponseData() {},
        onResponseEnd() {
          clearTimeout(timer);
          resolve(status);
        },
        onResponseError(_controller, error) {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.agent.dispatch(
        {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: 'POST',
          headers: options.headers, // undici adds content-length for a string body
          body: options.body,
        },
        handler,
      );
    });
  }

  close(): void {
    void this.agent.destroy();
  }
}

/**
 * Standard Webhooks headers for one delivery. The signer is built from the
 * subscription's opened secret; callers cache it per subscription (decoding
 * the secret per event would be wasted work).
 */
export function signedHeaders(signer: Webhook, eventId: string, body: string, now: Date = new Date()): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': eventId,
    'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    'webhook-signature': signer.sign(eventId, now, body),
    'user-agent': 'onceflow-relay',
  };
}
