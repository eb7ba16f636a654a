/**
 * Abuse limits that are rates, with token buckets: CONNECTs per source address and per node, and
 * PUBLISHes per client. Memory is bounded: per-client buckets live in a WeakMap keyed by the
 * channel (gone with it); the per-source map holds at most `maxSources` entries, least recently
 * used first out (entries idle long enough to be full again are dropped first, as they carry no
 * state worth keeping).
 *
 * Also the wildcard limit of subscription filters (`limits.maxFilterWildcards`): the number of
 * `+` and `#` levels in one filter. That count, not the depth of the first wildcard, is what makes
 * a filter expensive to match (each `+` is a branch the trie walks), so it is what we bound.
 *
 * Callers (channel/connect.ts, publish.ts, subscribe.ts) count hits with `broker.stats.limit(name)`
 * under the names this module returns.
 */

export interface AbuseLimitsOptions {
  /** CONNECTs per second per source address; 0 = off. */
  connectRatePerSource: number;
  /** CONNECTs per second on this node; 0 = off. */
  connectRate: number;
  /** PUBLISHes per second per client; 0 = off. */
  publishRatePerClient: number;
  /** Wildcard levels per filter; 0 = off. */
  maxFilterWildcards: number;
  /** Cap of the per-source table (default 65536). */
  maxSources?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** Names under which hits are counted in `broker.stats.limitHits`. */
export const LIMIT_NAMES = {
  connectRatePerSource: 'connect_rate_per_source',
  connectRate: 'connect_rate',
  publishRate: 'publish_rate',
  filterWildcards: 'filter_wildcards',
} as const;

/** A token bucket holding up to `rate` tokens (one second's worth), refilled at `rate` per second. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.last = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** True when the bucket would be full at `now` (its state is then the same as a new one's). */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.rate;
  }

  private refill(now: number): void {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.rate, this.tokens + (elapsed * this.rate) / 1000);
      this.last = now;
    }
  }
}

export const DEFAULT_MAX_SOURCES = 65_536;

export class AbuseLimiter {
  private readonly now: () => number;
  private readonly maxSources: number;
  /** Source key -> bucket, in least-recently-used order (a hit re-inserts). */
  private readonly sources = new Map<string, TokenBucket>();
  private readonly node: TokenBucket | undefined;
  private readonly publishers = new WeakMap<object, TokenBucket>();

  constructor(private readonly opts: AbuseLimitsOptions) {
    this.now = opts.now ?? Date.now;
    this.maxSources = Math.max(1, opts.maxSources ?? DEFAULT_MAX_SOURCES);
    this.node = opts.connectRate > 0 ? new TokenBucket(opts.connectRate, this.now()) : undefined;
  }

  /** Entries in the per-source table (tests, metrics). */
  get trackedSources(): number {
    return this.sources.size;
  }

  /**
   * Counts one CONNECT from `remoteAddress` (`host:port`, `[v6]:port` or a bare address).
   * Returns undefined when admitted, else the name of the limit hit.
   */
  admitConnect(remoteAddress: string): string | undefined {
    const now = this.now();
    if (this.opts.connectRatePerSource > 0) {
      const key = sourceKey(remoteAddress);
      let bucket = this.sources.get(key);
      if (bucket) this.sources.delete(key);
      else {
        if (this.sources.size >= this.maxSources) this.evict(now);
        bucket = new TokenBucket(this.opts.connectRatePerSource, now);
      }
      this.sources.set(key, bucket);
      if (!bucket.take(now)) return LIMIT_NAMES.connectRatePerSource;
    }
    if (this.node && !this.node.take(now)) return LIMIT_NAMES.connectRate;
    return undefined;
  }

  /** Counts one PUBLISH of `client` (any object that lives as long as the connection). */
  admitPublish(client: object): boolean {
    const rate = this.opts.publishRatePerClient;
    if (rate <= 0) return true;
    const now = this.now();
    let bucket = this.publishers.get(client);
    if (!bucket) {
      bucket = new TokenBucket(rate, now);
      this.publishers.set(client, bucket);
    }
    return bucket.take(now);
  }

  /** True when `filter` has more wildcard levels than allowed. */
  tooManyWildcards(filter: string): boolean {
    const max = this.opts.maxFilterWildcards;
    if (max <= 0) return false;
    return countWildcards(filter) > max;
  }

  /** Makes room in the per-source table: drops full (idle) buckets among the oldest, else the oldest. */
  private evict(now: number): void {
    // Look at a bounded number of the least recently used entries, so one CONNECT never costs
    // a walk over the whole table.
    let looked = 0;
    let removed = 0;
    for (const [key, bucket] of this.sources) {
      if (looked++ >= 64) break;
      if (bucket.isFull(now)) {
        this.sources.delete(key);
        removed++;
      }
    }
    if (removed === 0) {
      const oldest = this.sources.keys().next();
      if (!oldest.done) this.sources.delete(oldest.value);
    }
  }
}

/** Number of `+` / `#` levels in a topic filter. */
export function countWildcards(filter: string): number {
  let n = 0;
  let start = 0;
  for (let i = 0; i <= filter.length; i++) {
    if (i === filter.length || filter.charCodeAt(i) === 0x2f /* / */) {
      if (i - start === 1) {
        const c = filter.charCodeAt(start);
        if (c === 0x2b /* + */ || c === 0x23 /* # */) n++;
      }
      start = i + 1;
    }
  }
  return n;
}

/**
 * The key a source address is limited under: the address without its port; IPv6 addresses by
 * their /64 prefix (one host usually owns a whole /64, so per-address limits are easy to dodge).
 * IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as the IPv4 address. `remoteAddress` is as
 * a Connection formats it: `${address}:${port}` (or `[v6]:port`).
 */
export function sourceKey(remoteAddress: string): string {
  let host = remoteAddress;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end > 0 ? host.slice(1, end) : host.slice(1);
  } else {
    host = host.replace(/:\d{1,5}$/, '');
  }
  if (host.toLowerCase().startsWith('::ffff:') && host.includes('.')) return host.slice(7);
  if (!host.includes(':')) return host;
  const groups = expandIPv6(host);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : host;
}

/** The 8 groups of an IPv6 address (zone dropped), or undefined when it is not one. */
function expandIPv6(s: string): string[] | undefined {
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (!/^[0-9a-fA-F:]+$/.test(s)) return undefined;
  const parts = s.split('::');
  if (parts.length > 2) return undefined;
  const head = parts[0] ? parts[0].split(':') : [];
  const tail = parts.length === 2 && parts[1] ? parts[1].split(':') : [];
  if ([...head, ...tail].some((g) => g.length === 0 || g.length > 4)) return undefined;
  const missing = 8 - head.length - tail.length;
  if (parts.length === 1 ? missing !== 0 : missing < 1) return undefined;
  return [...head, ...Array<string>(parts.length === 2 ? missing : 0).fill('0'), ...tail].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}
