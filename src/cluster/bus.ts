/**
 * The cluster's messaging over Redis: node registry with heartbeats, the chores lease, a change
 * feed every node tails (`events` stream) and one inbox stream per node for forwarded deliveries.
 * Streams, not pub/sub: a node that is briefly away still reads what it missed (design notes §3).
 *
 * Everything sent within one event-loop turn leaves in one pipeline: one XADD per destination.
 */
import { Buffer } from 'node:buffer';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

export interface RedisEndpoint {
  url?: string;
  sentinels?: Array<{ host: string; port: number }>;
  sentinelName?: string;
}

export interface BusOptions extends RedisEndpoint {
  nodeId: string;
  keyPrefix: string;
  /** Addresses clients use to reach this node (for `cluster status`, Server Reference). */
  address: string;
  heartbeatMs: number;
  /** A node whose heartbeat key is older than this is dead. */
  nodeTtlMs: number;
  leaseTtlMs: number;
  /** Longest a stream may grow (approximate trimming). */
  maxStreamLength: number;
}

export interface NodeInfo {
  id: string;
  address: string;
  startedAt: number;
  clients: number;
  draining?: boolean;
}

export function redisOptions(e: RedisEndpoint): { url?: string; options: RedisOptions } {
  const options: RedisOptions = {
    // Bounded: an operation fails instead of waiting forever while Redis is away.
    maxRetriesPerRequest: 2,
    commandTimeout: 5000,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(times * 100, 1000),
    lazyConnect: true,
  };
  if (e.sentinels && e.sentinels.length > 0) {
    options.sentinels = e.sentinels;
    options.name = e.sentinelName ?? 'mymaster';
    return { options };
  }
  return { url: e.url ?? 'redis://127.0.0.1:6379', options };
}

export function connectRedis(e: RedisEndpoint, extra: RedisOptions = {}): Redis {
  const { url, options } = redisOptions(e);
  return url ? new Redis(url, { ...options, ...extra }) : new Redis({ ...options, ...extra });
}

/**
 * JSON with Buffers (any Uint8Array) as {"$b": base64}. Written as a walk around plain
 * JSON.stringify / JSON.parse rather than with a replacer and a reviver: those take V8's JSON off
 * its fast path and are called for every value, and a Buffer went through its `toJSON` (an
 * array of numbers) first. The reviver alone was 64% of a node's time receiving forwarded
 * messages in the cross-node fan-in benchmark.
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(toWire(value));
}

export function decodeJson<T>(text: string): T {
  return fromWire(JSON.parse(text)) as T;
}

/** `value` with every Uint8Array replaced by {$b: base64}; objects and arrays without one are
 *  returned as they are (not copied), those with one are copied shallowly. */
function toWire(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return { $b: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = value[i] as unknown;
      const w = toWire(v);
      if (out === undefined && w !== v) out = value.slice(0, i);
      if (out !== undefined) out.push(w);
    }
    return out ?? value;
  }
  // Objects with their own JSON form (Date, ...) are left to JSON.stringify.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;
  let out: Record<string, unknown> | undefined;
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    const v = o[k];
    const w = toWire(v);
    if (out === undefined && w !== v) out = { ...o };
    if (out !== undefined) out[k] = w;
  }
  return out ?? value;
}

/** The parsed JSON with every {$b: string} object turned into a Buffer (in place). */
function fromWire(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = fromWire(value[i]);
    return value;
  }
  const o = value as Record<string, unknown>;
  if (typeof o.$b === 'string') return Buffer.from(o.$b, 'base64');
  for (const k of Object.keys(o)) o[k] = fromWire(o[k]);
  return o;
}

const RENEW_LEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

export class ClusterBus {
  readonly cmd: Redis;
  private readonly reader: Redis;
  private running = false;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly outbox = new Map<string, unknown[]>();
  private flushScheduled = false;
  private eventsId = '$';
  private inboxId = '$';
  private readLoop: Promise<void> | undefined;
  lastHeartbeatOk = 0;
  leaseHolder = false;
  startedAt = Date.now();
  clientCount = () => 0;
  draining = false;
  onEvents: (events: unknown[]) => void = () => undefined;
  onInbox: (items: unknown[]) => void = () => undefined;
  /** Called after each heartbeat round with whether this node still reaches Redis in time. */
  onHealth: (healthy: boolean) => void = () => undefined;
  onLeaseTick: () => void = () => undefined;

  constructor(
    readonly opts: BusOptions,
    private readonly logger: Logger,
  ) {
    this.cmd = connectRedis(opts);
    this.reader = connectRedis(opts, { commandTimeout: undefined });
    this.cmd.on('error', (err) => this.logger.debug({ err: err.message }, 'redis error'));
    this.reader.on('error', (err) => this.logger.debug({ err: err.message }, 'redis reader error'));
  }

  key(name: string): string {
    return this.opts.keyPrefix + name;
  }

  get eventsKey(): string {
    return this.key('events');
  }

  inboxKey(node: string): string {
    return this.key(`inbox:${node}`);
  }

  async connect(): Promise<void> {
    await this.cmd.connect();
    await this.reader.connect();
  }

  /**
   * Fixes where reading starts: events after the newest one now (call before loading the
   * snapshot, so nothing between snapshot and tail is missed; applying an event twice is
   * harmless), and an empty inbox (deliveries for a previous life of this node are moot).
   */
  async preparePositions(): Promise<void> {
    const last = (await this.cmd.xrevrange(this.eventsKey, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
    this.eventsId = last.length > 0 ? last[0]![0] : '0-0';
    await this.cmd.del(this.inboxKey(this.opts.nodeId));
    this.inboxId = '0-0';
  }

  async start(): Promise<void> {
    this.running = true;
    await this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.opts.heartbeatMs);
    this.heartbeatTimer.unref();
    this.readLoop = this.read();
  }

  async stop(deregister: boolean): Promise<void> {
    this.running = false;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.flush();
    try {
      if (deregister) {
        await this.cmd.del(this.key(`node:${this.opts.nodeId}`));
        await this.cmd.srem(this.key('nodes'), this.opts.nodeId);
        if (this.leaseHolder) await this.cmd.eval(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`, 1, this.key('lease'), this.opts.nodeId);
      }
    } catch (err) {
      this.logger.warn({ err }, 'could not deregister node');
    }
    this.reader.disconnect();
    await this.readLoop?.catch(() => undefined);
    await this.cmd.quit().catch(() => this.cmd.disconnect());
  }

  private heartbeatInFlight = false;

  private async heartbeat(): Promise<void> {
    const o = this.opts;
    // Self-fencing must not wait for a failing heartbeat to settle: while Redis is unreachable
    // (e.g. a partition that black-holes packets) a heartbeat only fails after the command
    // timeout (5 s), long after the other nodes declared this one dead (node TTL) and adopted its
    // sessions. So staleness is checked on every tick, and a tick does not pile another
    // heartbeat onto one still waiting (invariant 3: a node cut off stops serving in time).
    if (this.lastHeartbeatOk > 0 && Date.now() - this.lastHeartbeatOk > o.nodeTtlMs * 0.8) {
      this.leaseHolder = false;
      this.onHealth(false);
    }
    if (this.heartbeatInFlight) return;
    this.heartbeatInFlight = true;
    try {
      await this.heartbeatOnce();
    } finally {
      this.heartbeatInFlight = false;
    }
  }

  private async heartbeatOnce(): Promise<void> {
    const o = this.opts;
    const info: NodeInfo = {
      id: o.nodeId,
      address: o.address,
      startedAt: this.startedAt,
      clients: this.clientCount(),
      draining: this.draining || undefined,
    };
    try {
      const res = await this.cmd
        .multi()
        .set(this.key(`node:${o.nodeId}`), JSON.stringify(info), 'PX', o.nodeTtlMs)
        .sadd(this.key('nodes'), o.nodeId)
        .set(this.key('lease'), o.nodeId, 'PX', o.leaseTtlMs, 'NX')
        .eval(RENEW_LEASE, 1, this.key('lease'), o.nodeId, o.leaseTtlMs)
        .exec();
      this.lastHeartbeatOk = Date.now();
      const holder = res?.[2]?.[1] === 'OK' || res?.[3]?.[1] === 1;
      if (holder && !this.leaseHolder) this.logger.info({ nodeId: o.nodeId }, 'lease acquired');
      this.leaseHolder = holder;
      this.onHealth(true);
      if (holder) this.onLeaseTick();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'heartbeat failed');
      // Lost contact for longer than our own TTL: other nodes consider us dead.
      if (Date.now() - this.lastHeartbeatOk > o.nodeTtlMs * 0.8) {
        this.leaseHolder = false;
        this.onHealth(false);
      }
    }
  }

  /** Nodes registered and whether their heartbeat is live. */
  async nodes(): Promise<Array<{ id: string; alive: boolean; info?: NodeInfo }>> {
    const ids = await this.cmd.smembers(this.key('nodes'));
    if (ids.length === 0) return [];
    const infos = await this.cmd.mget(ids.map((id) => this.key(`node:${id}`)));
    return ids.map((id, i) => ({ id, alive: infos[i] != null, info: infos[i] ? (JSON.parse(infos[i]!) as NodeInfo) : undefined }));
  }

  async leaseOwner(): Promise<string | null> {
    return this.cmd.get(this.key('lease'));
  }

  async forgetNode(id: string): Promise<void> {
    await this.cmd.srem(this.key('nodes'), id);
  }

  /** Takes the cleanup lock of a node (so its leftovers are handled once). */
  async lockCleanup(id: string): Promise<boolean> {
    return (await this.cmd.set(this.key(`cleanup:${id}`), this.opts.nodeId, 'PX', 30000, 'NX')) === 'OK';
  }

  async unlockCleanup(id: string): Promise<void> {
    await this.cmd.del(this.key(`cleanup:${id}`));
  }

  /** Queues an event for every node (sent with this turn's pipeline). */
  publishEvent(event: unknown): void {
    this.enqueue(this.eventsKey, event);
  }

  /** Queues an item for one node's inbox. */
  send(node: string, item: unknown): void {
    this.enqueue(this.inboxKey(node), item);
  }

  private enqueue(stream: string, item: unknown): void {
    const list = this.outbox.get(stream);
    if (list) list.push(item);
    else this.outbox.set(stream, [item]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outbox.size === 0) return;
    const pipe = this.cmd.pipeline();
    for (const [stream, items] of this.outbox) {
      pipe.xadd(stream, 'MAXLEN', '~', this.opts.maxStreamLength, '*', 'd', encodeJson(items));
    }
    this.outbox.clear();
    pipe.exec().catch((err) => this.logger.warn({ err: (err as Error).message }, 'cluster send failed'));
  }

  private async read(): Promise<void> {
    const inbox = this.inboxKey(this.opts.nodeId);
    while (this.running) {
      let res: Array<[string, Array<[string, string[]]>]> | null;
      try {
        res = (await this.reader.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', this.eventsKey, inbox, this.eventsId, this.inboxId)) as typeof res;
      } catch (err) {
        if (!this.running) return;
        this.logger.debug({ err: (err as Error).message }, 'cluster read failed');
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (!res) continue;
      for (const [stream, entries] of res) {
        const items: unknown[] = [];
        for (const [id, fields] of entries) {
          if (stream === this.eventsKey) this.eventsId = id;
          else this.inboxId = id;
          const i = fields.indexOf('d');
          if (i >= 0) items.push(...decodeJson<unknown[]>(fields[i + 1]!));
        }
        try {
          if (stream === this.eventsKey) this.onEvents(items);
          else this.onInbox(items);
        } catch (err) {
          this.logger.error({ err }, 'cluster handler failed');
        }
      }
    }
  }
}
