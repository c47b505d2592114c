import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { AppError } from '../errors';

/**
 * Resolves a host name to all its addresses, like `dns.promises.lookup(host,
 * { all: true })`. Injected so a test can make a name resolve to a public
 * address at create time and to loopback later (DNS rebinding).
 */
export type HostResolver = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolver: HostResolver = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) => (error ? reject(error) : resolve(addresses))));

/**
 * The address ranges a subscription may not reach, by the name the 400
 * problem and the stored delivery error give (ipaddr.js names its ranges; we
 * map them to the rule a tenant reads). Everything not `unicast` in
 * ipaddr.js's table is refused: the list in the contract (loopback,
 * link-local, private, unspecified, multicast, CGNAT) plus broadcast and the
 * reserved blocks, which no legitimate subscriber uses either.
 */
const RULES: Record<string, string> = {
  loopback: 'loopback',
  linkLocal: 'link-local',
  private: 'private',
  uniqueLocal: 'private',
  unspecified: 'unspecified',
  multicast: 'multicast',
  carrierGradeNat: 'cgnat',
  broadcast: 'broadcast',
  reserved: 'reserved',
};

/** Thrown when a subscription URL's host is, or resolves to, an address the relay must not reach. */
export class BlockedAddressError extends AppError<{ host: string; rule: string }> {
  override readonly name = 'BlockedAddressError';
  readonly code = 'ONCEFLOW_BLOCKED_ADDRESS';
  /**
   * @param rule the range's name (loopback, private, …): safe to show the tenant.
   * @param address the address itself: for the operator's log only.
   */
  constructor(readonly host: string, readonly address: string, readonly rule: string) {
    super(`${host} is or resolves to a ${rule} address`, { context: { host, rule } });
  }
}

/** The rule an address breaks, or undefined when a subscriber may live there. IPv4-mapped IPv6 is judged as its IPv4 address. */
export function blockedRule(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return 'unparseable';
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  return RULES[parsed.range()];
}

export interface AddressPolicyOptions {
  /**
   * Host names or IP literals (exact, case-insensitive) a subscription may
   * name even when they are or resolve to a blocked address: an operator's
   * internal consumer, the tests' and the local run's loopback subscribers.
   * Default none (WEBHOOK_ALLOWED_HOSTS).
   */
  allowedHosts?: readonly string[];
  /** Default: the system resolver (dns.lookup, as sockets use). */
  resolve?: HostResolver;
}

/**
 * Keeps subscriptions from aiming signed POSTs inside the deployment (SSRF):
 * loopback, the cloud metadata address, private ranges, the compose network.
 * Checked twice: when a URL is stored (`checkUrl`, a 400 for the tenant) and
 * on every connection the relay opens (`lookup`, handed to undici's
 * connector), because a name that resolved to a public address when it was
 * stored may resolve to 127.0.0.1 by the time it is delivered to.
 */
export class AddressPolicy {
  private readonly allowed: ReadonlySet<string>;
  private readonly resolve: HostResolver;

  constructor(options: AddressPolicyOptions = {}) {
    this.allowed = new Set((options.allowedHosts ?? []).map(normalizeHost));
    this.resolve = options.resolve ?? systemResolver;
  }

  isAllowedHost(host: string): boolean {
    return this.allowed.has(normalizeHost(host));
  }

  /**
   * Rejects with BlockedAddressError when the URL's host is, or resolves to,
   * a blocked address. A name that does not resolve now is accepted: the
   * check that matters is the one at delivery time, on the address actually
   * connected to, and a consumer may be deployed after its subscription.
   */
  async checkUrl(url: string): Promise<void> {
    const host = normalizeHost(new URL(url).hostname);
    if (this.allowed.has(host)) return;
    if (isIP(host)) return this.check(host, host);
    let addresses: LookupAddress[];
    try {
      addresses = await this.resolve(host);
    } catch {
      return;
    }
    for (const { address } of addresses) this.check(host, address);
  }

  /** Throws BlockedAddressError for a host (not allowlisted) at a blocked address. */
  check(host: string, address: string): void {
    if (this.allowed.has(normalizeHost(host))) return;
    const rule = blockedRule(address);
    if (rule) throw new BlockedAddressError(host, address, rule);
  }

  /**
   * A `lookup` for net/tls.connect (undici's connector passes it through):
   * resolves with the injected resolver and fails the connection before the
   * socket opens when any address is blocked, so the socket can only ever
   * connect to an address this policy has checked. Node calls it with
   * `all: true` when it races address families (autoSelectFamily, the
   * default), else for one address.
   */
  readonly lookup: LookupFunction = (hostname: string, options: LookupOptions, callback): void => {
    const all = options.all === true;
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
    this.resolve(hostname).then(
      (found) => {
        const addresses = found.filter((a) => !family || a.family === family);
        try {
          for (const { address } of addresses) this.check(hostname, address);
        } catch (error) {
          return callback(error as NodeJS.ErrnoException, all ? [] : '', undefined);
        }
        if (addresses.length === 0) {
          const notFound: NodeJS.ErrnoException = Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' });
          return callback(notFound, all ? [] : '', undefined);
        }
        if (all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, all ? [] : '', undefined),
    );
  };
}

/** Lower case, IPv6 brackets dropped (URL.hostname keeps them). */
function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
}
