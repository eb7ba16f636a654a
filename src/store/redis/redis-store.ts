/**
 * `RedisStore`: the cluster store. All state lives in Redis (standalone, or a primary found through
 * Sentinel); the node keeps nothing but a connection. See README.md for the key layout, the cost
 * model, the durability levels and what changes on Redis Cluster.
 *
 * - Every write is one Lua script (EVALSHA) that checks the epoch and writes atomically.
 * - Group commit: every command issued in one event-loop turn goes out as one pipeline (one socket
 *   write, one round trip); with `durability: 'replicated'` one `WAIT` closes the pipeline and every
 *   write of the batch resolves only when it confirmed enough replicas.
 * - Failures are bounded: no offline queue (a command issued while disconnected fails at once),
 *   nothing resent after a reconnect (a write whose answer was lost is reported as failed, never
 *   executed twice behind the caller's back), and every operation settles within
 *   `commandTimeoutMs`. The client reconnects by itself (through Sentinel after a failover).
 */
import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
import {
  StaleEpochError,
  StoreError,
  type DeliveryEntry,
  type PublishCommit,
  type PublishCommitResult,
  type SessionRecord,
  type SessionSnapshot,
  type Store,
  type StoredMessage,
  type SubscriptionRecord,
  type TakeSessionResult,
} from '../types.js';
import { decodeJson, decodeMessage, encodeJson, encodeMessage, entryTail, parseEntry } from './codec.js';
import { SCRIPTS, type ScriptName } from './scripts.js';

export type RedisDurability = 'memory' | 'replicated' | 'fsync';

export interface RedisStoreLogger {
  warn(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
}

export interface RedisStoreOptions {
  /** Standalone server, e.g. `redis://127.0.0.1:6379/0` (ignored when `sentinels` is set). */
  url?: string;
  /** Sentinels to ask for the current primary of `sentinelName`. */
  sentinels?: Array<{ host: string; port: number }>;
  /** Master name known to the Sentinels (default `skein`). */
  sentinelName?: string;
  /** Prefix of every key (default `skein:`). */
  keyPrefix?: string;
  durability: RedisDurability;
  /** `replicated`: replicas that must confirm each batch (default 1). */
  replicas?: number;
  /** `replicated`: how long WAIT waits for them (default 1000 ms). */
  waitTimeoutMs?: number;
  /** Bound on every operation: it settles (rejects with `StoreError`) within this time. Default
   *  2000 ms, plus `waitTimeoutMs` for writes under `replicated`. */
  commandTimeoutMs?: number;
  /** Bound on `open` (connect, find the primary, check the configuration). Default 5000 ms. */
  connectTimeoutMs?: number;
  logger?: RedisStoreLogger;
}

/** Counters since open (for metrics and the cost model). */
export interface RedisStoreStats {
  /** Pipelines sent: one socket write and one round trip each. */
  roundTrips: number;
  /** Commands sent, not counting WAIT. */
  commands: number;
  /** WAIT commands sent (`replicated`: one per pipeline holding a write). */
  waits: number;
  /** Batches whose WAIT confirmed fewer replicas than asked. */
  replicationFailures: number;
  /** Batches rejected because the connection dropped or the answer took too long. */
  failedBatches: number;
}

interface Slot {
  build: (p: ChainableCommander) => void;
  write: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

interface Batch {
  slots: Slot[];
  started: number;
  deadline: number;
  done: boolean;
}

/** What a custom script command looks like on a client or a pipeline. */
type ScriptCall = (numKeys: number, ...args: Array<string | Buffer | number>) => unknown;

const STALE = /^SKEIN_STALE ?(\d*)/;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class RedisStore implements Store {
  private readonly prefix: string;
  private readonly durability: RedisDurability;
  private readonly replicas: number;
  private readonly waitTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly logger: RedisStoreLogger;
  private redis: Redis | undefined;
  private state: 'new' | 'open' | 'closed' = 'new';
  private current: Slot[] | null = null;
  private readonly inflight = new Set<Batch>();
  private sweeper: NodeJS.Timeout | undefined;
  private connected = false;
  /** Set when a reconnect landed on a server that does not fsync every write. */
  private fsyncProblem: StoreError | undefined;
  private readonly counters: RedisStoreStats = { roundTrips: 0, commands: 0, waits: 0, replicationFailures: 0, failedBatches: 0 };

  constructor(private readonly opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix ?? 'skein:';
    this.durability = opts.durability;
    this.replicas = opts.replicas ?? 1;
    this.waitTimeoutMs = opts.waitTimeoutMs ?? 1000;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 2000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.logger = opts.logger ?? { warn: () => undefined };
    if (!['memory', 'replicated', 'fsync'].includes(this.durability)) {
      throw new StoreError(`unknown Redis durability ${JSON.stringify(this.durability)} (memory, replicated or fsync)`);
    }
    if (this.durability === 'replicated' && !(Number.isInteger(this.replicas) && this.replicas >= 1)) {
      throw new StoreError(`replicas must be an integer >= 1 for durability replicated, got ${this.replicas}`);
    }
  }

  get stats(): RedisStoreStats {
    return { ...this.counters };
  }

  // ---- keys ----

  private sessionKeys(clientId: string): [s: string, sub: string, q: string, p: string, i: string] {
    const t = `${this.prefix}{c:${clientId}}:`;
    return [`${t}s`, `${t}sub`, `${t}q`, `${t}p`, `${t}i`];
  }
  private get epochKey(): string {
    return `${this.prefix}epoch`;
  }
  private get indexKey(): string {
    return `${this.prefix}sessions`;
  }
  private get retainedKey(): string {
    return `${this.prefix}retained`;
  }
  private messageKey(id: string): string {
    return `${this.prefix}m:${id}`;
  }

  // ---- lifecycle ----

  async open(): Promise<void> {
    if (this.state !== 'new') throw new StoreError(`Redis store cannot be opened: it is ${this.state}`);
    const common: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      enableReadyCheck: true,
      // A backstop behind our own bound (the sweep), so our clearer error comes first.
      commandTimeout: this.commandTimeoutMs + (this.durability === 'replicated' ? this.waitTimeoutMs : 0) + 1000,
      connectTimeout: Math.min(this.connectTimeoutMs, 2000),
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(50 * times, 500),
    };
    const redis = this.opts.sentinels?.length
      ? new Redis({
          ...common,
          sentinels: this.opts.sentinels,
          name: this.opts.sentinelName ?? 'skein',
          role: 'master',
          sentinelRetryStrategy: (times) => Math.min(100 * times, 1000),
          sentinelCommandTimeout: 1000,
          failoverDetector: true,
        })
      : new Redis(this.opts.url ?? 'redis://127.0.0.1:6379', common);
    for (const [name, def] of Object.entries(SCRIPTS)) {
      redis.defineCommand(name, { lua: def.lua, readOnly: 'readOnly' in def ? def.readOnly : false });
    }
    redis.on('error', (err: Error) => {
      if (this.connected && this.state === 'open') this.logger.warn({ err: message(err) }, 'Redis store: connection error');
    });
    redis.on('close', () => {
      if (this.connected && this.state === 'open') this.logger.warn({}, 'Redis store: connection lost, reconnecting');
      this.connected = false;
      this.failInflight(new StoreError('connection to Redis lost; the operation may or may not have been applied'));
    });
    redis.on('ready', () => {
      const again = this.state === 'open';
      this.connected = true;
      if (again) {
        this.logger.info?.({}, 'Redis store: reconnected');
        if (this.durability === 'fsync') void this.checkFsync(redis).then((e) => (this.fsyncProblem = e));
      }
    });
    this.redis = redis;
    try {
      await withTimeout(redis.connect(), this.connectTimeoutMs, 'connecting to Redis');
      if (this.durability === 'fsync') {
        const problem = await this.checkFsync(redis);
        if (problem) throw problem;
      }
    } catch (err) {
      redis.disconnect();
      this.redis = undefined;
      this.state = 'closed';
      throw err instanceof StoreError ? err : new StoreError(`cannot open the Redis store: ${message(err)}`, { cause: err });
    }
    this.state = 'open';
    const every = Math.max(25, Math.floor(this.commandTimeoutMs / 10));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  /** `fsync` needs `appendonly yes` and `appendfsync always`; returns the problem, if any. */
  private async checkFsync(redis: Redis): Promise<StoreError | undefined> {
    try {
      const [, aof] = (await redis.config('GET', 'appendonly')) as string[];
      const [, policy] = (await redis.config('GET', 'appendfsync')) as string[];
      if (aof === 'yes' && policy === 'always') return undefined;
      return new StoreError(
        `durability fsync needs the Redis server to run with appendonly yes and appendfsync always; it runs with appendonly ${aof} and appendfsync ${policy}`,
      );
    } catch (err) {
      return new StoreError(`durability fsync: cannot read the Redis configuration (CONFIG GET appendonly/appendfsync): ${message(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.state !== 'open') {
      this.state = 'closed';
      return;
    }
    this.state = 'closed';
    if (this.current) this.flush();
    // Let the batches in flight settle (each is bounded by the sweep, which keeps running).
    const until = Date.now() + this.commandTimeoutMs + this.waitTimeoutMs + 500;
    while (this.inflight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    clearInterval(this.sweeper);
    const redis = this.redis!;
    this.redis = undefined;
    await withTimeout(redis.quit(), 1000, 'closing the Redis connection').catch(() => redis.disconnect());
    redis.disconnect();
  }

  // ---- batching ----

  /** Queues one command for this turn's pipeline. */
  private enqueue(write: boolean, build: (p: ChainableCommander) => void): Promise<unknown> {
    if (this.state !== 'open') return Promise.reject(new StoreError(`Redis store is ${this.state === 'new' ? 'not open' : 'closed'}`));
    if (write && this.fsyncProblem) return Promise.reject(this.fsyncProblem);
    return new Promise((resolve, reject) => {
      if (!this.current) {
        this.current = [];
        setImmediate(() => this.flush());
      }
      this.current.push({ build, write, resolve, reject });
    });
  }

  private flush(): void {
    const slots = this.current;
    this.current = null;
    if (!slots || slots.length === 0) return;
    const redis = this.redis;
    if (!redis) {
      for (const s of slots) s.reject(new StoreError('Redis store is closed'));
      return;
    }
    const pipeline = redis.pipeline();
    for (const s of slots) s.build(pipeline);
    const waits = this.durability === 'replicated' && slots.some((s) => s.write);
    if (waits) pipeline.wait(this.replicas, this.waitTimeoutMs);
    this.counters.roundTrips += 1;
    this.counters.commands += slots.length;
    if (waits) this.counters.waits += 1;
    const started = Date.now();
    const batch: Batch = {
      slots,
      started,
      deadline: started + this.commandTimeoutMs + (waits ? this.waitTimeoutMs : 0),
      done: false,
    };
    this.inflight.add(batch);
    pipeline.exec().then(
      (results) => this.settle(batch, results ?? [], waits),
      (err: unknown) => this.fail(batch, new StoreError(`Redis pipeline failed: ${message(err)}`, { cause: err })),
    );
  }

  private settle(batch: Batch, results: Array<[Error | null, unknown]>, waits: boolean): void {
    if (batch.done) return;
    batch.done = true;
    this.inflight.delete(batch);
    let replication: StoreError | undefined;
    if (waits) {
      const [err, acked] = results[batch.slots.length] ?? [new Error('no WAIT reply'), 0];
      if (err) replication = new StoreError(`replication not confirmed: WAIT failed: ${err.message}`, { cause: err });
      else if (typeof acked !== 'number' || acked < this.replicas) {
        this.counters.replicationFailures += 1;
        replication = new StoreError(
          `replication not confirmed: ${String(acked)} of ${this.replicas} replica(s) acknowledged within ${this.waitTimeoutMs} ms`,
        );
      }
    }
    batch.slots.forEach((slot, i) => {
      const [err, value] = results[i] ?? [new Error('no reply'), undefined];
      if (err) slot.reject(err);
      else if (slot.write && replication) slot.reject(replication);
      else slot.resolve(value);
    });
  }

  private fail(batch: Batch, err: StoreError): void {
    if (batch.done) return;
    batch.done = true;
    this.inflight.delete(batch);
    this.counters.failedBatches += 1;
    for (const s of batch.slots) s.reject(err);
  }

  private failInflight(err: StoreError): void {
    for (const batch of [...this.inflight]) this.fail(batch, err);
  }

  /** Rejects batches older than their bound (the inflight set is in send order). */
  private sweep(): void {
    const now = Date.now();
    for (const batch of this.inflight) {
      if (batch.deadline > now) continue;
      this.fail(batch, new StoreError(`no answer from Redis within ${batch.deadline - batch.started} ms; the operation may or may not have been applied`));
    }
  }

  /** Runs one command; maps a stale-epoch reply to `StaleEpochError` and anything else to `StoreError`. */
  private async run<T>(op: string, write: boolean, build: (p: ChainableCommander) => void, fence?: { clientId: string; epoch: number }): Promise<T> {
    try {
      return (await this.enqueue(write, build)) as T;
    } catch (err) {
      if (err instanceof StoreError || err instanceof StaleEpochError) throw err;
      const m = STALE.exec(message(err));
      if (m && fence) throw new StaleEpochError(fence.clientId, fence.epoch, m[1] ? Number(m[1]) : undefined);
      throw new StoreError(`Redis store ${op} failed: ${message(err)}`, { cause: err });
    }
  }

  private script<T>(name: ScriptName, keys: string[], args: Array<string | Buffer | number>, opts: { write: boolean; buffers?: boolean; fence?: { clientId: string; epoch: number } }): Promise<T> {
    const method = opts.buffers ? `${name}Buffer` : name;
    return this.run<T>(name, opts.write, (p) => {
      (p as unknown as Record<string, ScriptCall>)[method]!(keys.length, ...keys, this.prefix, ...args);
    }, opts.fence);
  }

  // ---- decoding ----

  private decodeSnapshot(clientId: string, raw: unknown): SessionSnapshot {
    const [rec, epoch, subs, entries, incoming] = raw as [Buffer, Buffer, Buffer[], Buffer[], Buffer[]];
    const deliveries: DeliveryEntry[] = [];
    for (let j = 0; j < entries.length; j += 3) {
      const e = parseEntry(entries[j + 1]!.toString());
      const blob = entries[j + 2]!;
      if (blob.length === 0) throw new StoreError(`session ${clientId}: queue entry references message ${e.messageId}, which is missing`);
      const entry: DeliveryEntry = { seq: Number(entries[j]!.toString()), message: decodeMessage(blob), qos: e.qos, retain: e.retain, phase: e.phase };
      if (e.subscriptionIds) entry.subscriptionIds = e.subscriptionIds;
      if (e.packetId !== undefined) entry.packetId = e.packetId;
      deliveries.push(entry);
    }
    deliveries.sort((a, b) => a.seq - b.seq);
    return {
      record: decodeJson<SessionRecord>(rec),
      epoch: Number(epoch.toString()),
      subscriptions: subs.map((s) => decodeJson<SubscriptionRecord>(s)).sort((a, b) => (a.filter < b.filter ? -1 : a.filter > b.filter ? 1 : 0)),
      deliveries,
      incomingQos2: incoming.map((b) => Number(b.toString())).sort((a, b) => a - b),
    };
  }

  // ---- sessions ----

  async takeSession(record: SessionRecord, cleanStart: boolean): Promise<TakeSessionResult> {
    const keys = [...this.sessionKeys(record.clientId), this.epochKey, this.indexKey];
    const [existed, epoch, prev] = await this.script<[number, number, unknown]>('skeinTake', keys, [record.clientId, encodeJson(record), cleanStart ? '1' : '0', ownerOf(record)], {
      write: true,
      buffers: true,
    });
    const result: TakeSessionResult = { epoch: Number(epoch), existed: Number(existed) === 1 };
    if (prev) result.previous = this.decodeSnapshot(record.clientId, prev);
    return result;
  }

  async updateSession(record: SessionRecord, epoch: number): Promise<void> {
    const [s] = this.sessionKeys(record.clientId);
    await this.script('skeinUpdate', [s], [String(epoch), encodeJson(record), ownerOf(record)], { write: true, fence: { clientId: record.clientId, epoch } });
  }

  async deleteSession(clientId: string, epoch?: number): Promise<void> {
    const keys = [...this.sessionKeys(clientId), this.indexKey];
    await this.script('skeinDelete', keys, [epoch === undefined ? '' : String(epoch), clientId], {
      write: true,
      fence: epoch === undefined ? undefined : { clientId, epoch },
    });
  }

  async getSession(clientId: string): Promise<SessionSnapshot | undefined> {
    const raw = await this.script<unknown>('skeinGet', this.sessionKeys(clientId), [], { write: false, buffers: true });
    return raw ? this.decodeSnapshot(clientId, raw) : undefined;
  }

  /** Every client id in the session index (SSCAN, so Redis is never blocked by one huge reply). */
  private async sessionIds(): Promise<string[]> {
    const ids = new Set<string>();
    let cursor = '0';
    for (let rounds = 0; rounds < 1_000_000; rounds++) {
      const [next, batch] = await this.run<[string, string[]]>('listSessions', false, (p) => {
        p.sscan(this.indexKey, cursor, 'COUNT', 1000);
      });
      for (const id of batch) ids.add(id);
      cursor = next;
      if (cursor === '0') break;
    }
    return [...ids];
  }

  async listSessions(): Promise<Array<{ record: SessionRecord; epoch: number }>> {
    const ids = await this.sessionIds();
    const out: Array<{ record: SessionRecord; epoch: number }> = [];
    for (let i = 0; i < ids.length; i += 1000) {
      const rows = await Promise.all(
        ids.slice(i, i + 1000).map((id) => this.run<[string | null, string | null]>('listSessions', false, (p) => {
          p.hmget(this.sessionKeys(id)[0], 'r', 'e');
        })),
      );
      for (const [rec, epoch] of rows) if (rec !== null && epoch !== null) out.push({ record: decodeJson<SessionRecord>(rec), epoch: Number(epoch) });
    }
    return out;
  }

  // ---- subscriptions ----

  async addSubscriptions(clientId: string, epoch: number, subs: SubscriptionRecord[]): Promise<void> {
    const [s, sub] = this.sessionKeys(clientId);
    await this.script('skeinSubscribe', [s, sub], [String(epoch), ...subs.flatMap((x) => [x.filter, encodeJson(x)])], { write: true, fence: { clientId, epoch } });
  }

  async removeSubscriptions(clientId: string, epoch: number, filters: string[]): Promise<void> {
    const [s, sub] = this.sessionKeys(clientId);
    await this.script('skeinUnsubscribe', [s, sub], [String(epoch), ...filters], { write: true, fence: { clientId, epoch } });
  }

  async listSubscriptions(): Promise<Array<{ clientId: string; subscription: SubscriptionRecord }>> {
    const ids = await this.sessionIds();
    const out: Array<{ clientId: string; subscription: SubscriptionRecord }> = [];
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      const rows = await Promise.all(
        chunk.map((id) => this.run<string[]>('listSubscriptions', false, (p) => {
          p.hvals(this.sessionKeys(id)[1]);
        })),
      );
      rows.forEach((subs, j) => {
        for (const s of subs) out.push({ clientId: chunk[j]!, subscription: decodeJson<SubscriptionRecord>(s) });
      });
    }
    return out;
  }

  // ---- messages ----

  async commitPublish(commit: PublishCommit): Promise<PublishCommitResult> {
    const m = commit.message;
    const q2 = commit.incomingQos2;
    if (commit.deliveries.length === 0 && !commit.retain && !q2) return { seqs: [], owners: [] };
    const keys = [this.retainedKey, this.messageKey(m.id)];
    if (q2) {
      const [s, , , , i] = this.sessionKeys(q2.clientId);
      keys.push(s, i);
    }
    const tails: string[] = [];
    for (const d of commit.deliveries) {
      const [s, , q] = this.sessionKeys(d.clientId);
      keys.push(s, q);
      tails.push(entryTail(d, m.id));
    }
    const args = [encodeMessage(m), m.topic, commit.retain ?? '', q2 ? String(q2.epoch) : '', q2 ? String(q2.packetId) : '', String(commit.maxQueued ?? 0), ...tails];
    const [seqs, owners] = await this.script<[number[], string[]]>('skeinCommit', keys, args, { write: true, fence: q2 ? { clientId: q2.clientId, epoch: q2.epoch } : undefined });
    return { seqs: seqs.map(Number), owners: owners.map((o) => (o === '' ? undefined : String(o))) };
  }

  async markSent(clientId: string, epoch: number, seq: number, packetId: number): Promise<void> {
    const [s, , q, p] = this.sessionKeys(clientId);
    await this.script('skeinSent', [s, q, p], [String(epoch), String(seq), String(packetId)], { write: true, fence: { clientId, epoch } });
  }

  async markReleased(clientId: string, epoch: number, packetId: number): Promise<void> {
    const [s, , q, p] = this.sessionKeys(clientId);
    await this.script('skeinReleased', [s, q, p], [String(epoch), String(packetId)], { write: true, fence: { clientId, epoch } });
  }

  async completeDelivery(clientId: string, epoch: number, packetId: number): Promise<void> {
    const [s, , q, p] = this.sessionKeys(clientId);
    await this.script('skeinComplete', [s, q, p], [String(epoch), String(packetId)], { write: true, fence: { clientId, epoch } });
  }

  async dropDeliveries(clientId: string, epoch: number, seqs: number[]): Promise<void> {
    const [s, , q, p] = this.sessionKeys(clientId);
    await this.script('skeinDrop', [s, q, p], [String(epoch), ...seqs.map(String)], { write: true, fence: { clientId, epoch } });
  }

  async updateDeliveries(clientId: string, epoch: number, ops: readonly number[]): Promise<void> {
    if (ops.length < 2) return;
    const [s, , q, p] = this.sessionKeys(clientId);
    await this.script('skeinDeliveries', [s, q, p], [String(epoch), ...ops.slice(0, ops.length & ~1).map(String)], { write: true, fence: { clientId, epoch } });
  }

  // ---- inbound QoS 2 ----

  async addIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void> {
    const [s, , , , i] = this.sessionKeys(clientId);
    await this.script('skeinQos2Add', [s, i], [String(epoch), String(packetId)], { write: true, fence: { clientId, epoch } });
  }

  async removeIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void> {
    const [s, , , , i] = this.sessionKeys(clientId);
    await this.script('skeinQos2Remove', [s, i], [String(epoch), String(packetId)], { write: true, fence: { clientId, epoch } });
  }

  // ---- retained ----

  async listRetained(): Promise<StoredMessage[]> {
    const blobs = await this.run<Buffer[]>('listRetained', false, (p) => {
      p.hvalsBuffer(this.retainedKey);
    });
    return blobs.map(decodeMessage);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreError(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The node serving a session according to its record: `o` in the session hash ('' = none). */
function ownerOf(record: SessionRecord): string {
  return record.disconnectedAt === undefined ? (record.nodeId ?? '') : '';
}
