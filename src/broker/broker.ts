/**
 * The local broker: session registry, subscription index, retained messages and the publish
 * pipeline (authorize -> retain -> route -> persist -> deliver). Wills and session expiry timers.
 * Network clients (channels) and internal publishers ($SYS) both enter through `publish`.
 * It owns no sockets; a channel registers itself as the delivery target of its session.
 */
import type { Logger } from 'pino';
import type { ClientIdentity, Authorizer } from '../auth/types.js';
import { Session } from '../session/session.js';
import type {
  DeliveryEntry,
  NewDelivery,
  QoS,
  SessionRecord,
  Store,
  StoredMessage,
  SubscriptionRecord,
  WillRecord,
} from '../store/types.js';
import { parseSharedFilter } from '../topics/validate.js';
import { RetainedTrie, TopicTrie } from '../topics/trie.js';
import type { BrokerOptions } from './options.js';
import { BrokerStats } from './stats.js';

/** What the broker needs from a connected client. */
export interface DeliveryTarget {
  readonly identity: ClientIdentity;
  /** Sends a QoS 0 message now, or drops it under backpressure. */
  sendQos0(message: StoredMessage, retain: boolean, subscriptionIds: number[] | undefined): void;
  /** The session got new queued entries: send what the in-flight window allows. */
  pump(): void;
  /** Server-initiated disconnect; resolves when the channel has finished closing. */
  kick(reasonCode: number, reasonString?: string): Promise<void>;
}

/**
 * What the broker needs from the cluster layer (absent on a single node). The broker applies
 * every change locally first, then tells the cluster, which tells the other nodes.
 */
export interface ClusterLink {
  readonly nodeId: string;
  /** Where a client not served here is: the node it is connected to (if any), and whether its
   *  session is persistent. Undefined when the cluster knows no such session. */
  locate(clientId: string): { node?: string; persistent: boolean } | undefined;
  /** Hands deliveries of one message to another node (batched per event-loop turn). */
  forward(node: string, message: StoredMessage, deliveries: ForwardedDelivery[]): void;
  /** True when a client of this node is preferred for a shared subscription. */
  sessionConnected(session: Session, cleanStart: boolean): void;
  sessionDisconnected(session: Session): void;
  sessionEnded(clientId: string, epoch: number): void;
  /** `epoch`: the session epoch the change was stored under (later epochs win). */
  subscribed(clientId: string, subs: SubscriptionRecord[], epoch: number): void;
  unsubscribed(clientId: string, filters: string[], epoch: number): void;
  retainedChanged(topic: string, message: StoredMessage | undefined): void;
}

/** A delivery forwarded to the node serving the client; `seq` when it is a stored entry. */
export interface ForwardedDelivery {
  c: string;
  q: QoS;
  r: boolean;
  s?: number[];
  seq?: number;
}

/** One recipient of a publish: a client and what its matching subscriptions ask for. */
interface RouteTarget {
  clientId: string;
  /** Highest QoS of the client's matching subscriptions. */
  qos: QoS;
  retainAsPublished: boolean;
  /** Subscription Identifiers of all of them [MQTT-3.3.4-3]; shared, never modified. */
  subscriptionIds: number[] | undefined;
  /** No Local [MQTT-3.8.3-3]: not to this client when it is the publisher. */
  noLocal: boolean;
}

/** A subscription in the index; it is its own RouteTarget when it is a client's only match. */
interface SubEntry extends RouteTarget {
  sub: SubscriptionRecord;
  /** Share Name for a shared subscription [MQTT-4.8.2]. */
  group?: string;
}

function subEntry(clientId: string, sub: SubscriptionRecord, group?: string): SubEntry {
  return {
    clientId,
    sub,
    group,
    qos: sub.qos,
    retainAsPublished: sub.retainAsPublished === true,
    subscriptionIds: sub.subscriptionId !== undefined ? [sub.subscriptionId] : undefined,
    noLocal: sub.noLocal === true,
  };
}

export interface OpenedSession {
  session: Session;
  /** A session existed for the client id (memory or store). */
  present: boolean;
}

export interface PublishOrigin {
  /** Publishing client, for No Local [MQTT-3.8.3-3]; undefined for internal publishers. */
  clientId?: string;
  /** Inbound QoS 2 packet id recorded atomically with the message. */
  incomingQos2?: { clientId: string; epoch: number; packetId: number };
  /** Internal status messages ($SYS): a retained copy is kept in memory only, not stored. */
  volatile?: boolean;
}

export interface PublishOutcome {
  /** Number of sessions the message was routed to. */
  readonly matched: number;
}

/** Shared outcomes for the common counts: no object per publish (outcomes are read-only). */
const OUTCOMES: readonly PublishOutcome[] = Array.from({ length: 64 }, (_, matched) => Object.freeze({ matched }));
const outcomeOf = (matched: number): PublishOutcome => OUTCOMES[matched] ?? { matched };

const MAX_TIMER_MS = 2 ** 31 - 1;

export class Broker {
  readonly stats = new BrokerStats();
  /** Every session alive on this node: connected ones and disconnected persistent ones. */
  readonly sessions = new Map<string, Session>();
  /** Connected clients by client id. */
  readonly targets = new Map<string, DeliveryTarget>();
  /** In-process subscribers (dynsec's command handler): in `sessions`/`targets`, not clients. */
  readonly internalClients = new Set<string>();
  private readonly subscriptions = new TopicTrie<SubEntry>();
  /** Reverse index: the filters each client has in `subscriptions` (local and remote clients). */
  private readonly clientFilters = new Map<string, Set<string>>();
  /** False while the node refuses new connections (draining, or cut off from the cluster). */
  acceptingConnections = true;
  private readonly retained = new RetainedTrie<StoredMessage>();
  private readonly willTimers = new Map<string, NodeJS.Timeout>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private readonly shareCursor = new Map<string, number>();
  private messageCounter = 0;
  /** Set by the composition root when the node is part of a cluster. */
  cluster: ClusterLink | undefined;
  private readonly messageIdPrefix: string;
  private closed = false;

  /**
   * `markSent` / `completeDelivery` noted during the current delivery batch, per session, as
   * `Store.updateDeliveries` pairs: written as one call per session when the batch ends (one
   * socket read's packets, one `pump` loop). Anything that reaches the store through `store`
   * writes them first, so the store sees every write in the order the broker made it.
   */
  private readonly deliveryOps = new Map<Session, { epoch: number; ops: number[] }>();
  private batchDepth = 0;
  /** `now()` of the open delivery batch; 0 until read. */
  private batchNow = 0;

  constructor(
    readonly options: BrokerOptions,
    private readonly sessionStore: Store,
    readonly authorizer: Authorizer,
    readonly logger: Logger,
  ) {
    this.messageIdPrefix = `${options.nodeId}-${Date.now().toString(36)}-`;
  }

  /** The store, with the delivery ops noted so far written first (see `deliveryOps`). */
  get store(): Store {
    if (this.deliveryOps.size > 0) this.flushDeliveryOps();
    return this.sessionStore;
  }

  /** Opens a delivery batch (nests); synchronous code only: the batch ends in the same turn. */
  beginDeliveryBatch(): void {
    if (this.batchDepth++ === 0) this.batchNow = 0;
  }

  /**
   * `Date.now()`, read at most once per delivery batch (one socket read: tens of PUBLISH packets
   * under load) and at each call outside one. Date.now() is a call into V8's C++ runtime: one
   * per message was 3.8% of the broker's CPU in fan-in QoS 1 (`--cpu-prof` line ticks). What it
   * stamps (a message's createdAt and expiry) is in milliseconds and seconds; a batch is handled
   * within one turn of the event loop.
   */
  now(): number {
    if (this.batchDepth === 0) return Date.now();
    return this.batchNow !== 0 ? this.batchNow : (this.batchNow = Date.now());
  }

  endDeliveryBatch(): void {
    if (--this.batchDepth === 0 && this.deliveryOps.size > 0) this.flushDeliveryOps();
  }

  /** Loads sessions, subscriptions and retained messages from the store. */
  async start(): Promise<void> {
    // In a cluster the state is shared: the cluster layer loads retained messages and routes once
    // it has fixed where it tails the change feed (so no change in between is missed), and adopts
    // the leftovers of this node's previous life; nothing is local yet.
    if (this.cluster) return;
    await this.loadRetained();
    const now = Date.now();
    for (const { record, epoch } of await this.store.listSessions()) {
      const snap = await this.store.getSession(record.clientId);
      if (!snap) continue;
      // A session still marked connected was cut off by a crash of this node: its connection
      // ended abnormally now, so its will is due and its expiry starts now.
      const wasConnected = record.disconnectedAt === undefined;
      const rec: SessionRecord = { ...record, nodeId: undefined, disconnectedAt: record.disconnectedAt ?? now };
      if (wasConnected) await this.store.updateSession(rec, epoch);
      const session = new Session(rec, this.isPersistent(rec), epoch);
      session.restore(snap.deliveries);
      for (const id of snap.incomingQos2) session.incomingQos2.add(id);
      for (const sub of snap.subscriptions) this.addToIndex(session.clientId, sub);
      for (const sub of snap.subscriptions) session.subscriptions.set(sub.filter, sub);
      this.sessions.set(session.clientId, session);
      // A will still in the record is pending: its connection ended abnormally and it has not fired.
      if (rec.will) this.scheduleWill(session, rec.will);
      this.scheduleExpiry(session);
    }
    this.logger.info(
      { sessions: this.sessions.size, retained: this.retained.size, subscriptions: this.subscriptions.size },
      'state restored',
    );
  }

  /** Loads every retained message from the store into the in-memory trie. */
  async loadRetained(): Promise<void> {
    for (const msg of await this.store.listRetained()) this.retained.set(msg.topic, msg);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.willTimers.values()) clearTimeout(t);
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    this.willTimers.clear();
    this.expiryTimers.clear();
  }

  nextMessageId(): string {
    return this.messageIdPrefix + (++this.messageCounter).toString(36);
  }

  /** Connected clients and sessions without the internal ones ($SYS, maxConnections, cluster). */
  get clientCounts(): { connected: number; sessions: number } {
    let connected = this.targets.size;
    let sessions = this.sessions.size;
    for (const id of this.internalClients) {
      if (this.targets.has(id)) connected--;
      if (this.sessions.has(id)) sessions--;
    }
    return { connected, sessions };
  }

  get retainedCount(): number {
    return this.retained.size;
  }

  get subscriptionCount(): number {
    return this.subscriptions.size;
  }

  isPersistent(record: SessionRecord): boolean {
    return record.expiryInterval > 0;
  }

  // ---------------------------------------------------------------- sessions

  /**
   * Opens (or resumes) the session for a connecting client, after any previous connection with
   * the same client id was taken over. Returns the session and whether it was present.
   */
  openSession(record: SessionRecord, cleanStart: boolean): OpenedSession | Promise<OpenedSession> {
    const clientId = record.clientId;
    // A new connection for this client id cancels a pending will [MQTT-3.1.2-8] [MQTT-3.1.3-9].
    this.cancelWill(clientId);
    this.cancelExpiry(clientId);
    let session = this.sessions.get(clientId);
    const persistent = this.isPersistent(record);
    // In a cluster every session is in the shared store: its routes and its will must be known
    // to the other nodes and survive this one.
    const mustStore = persistent || record.will !== undefined || this.cluster !== undefined;
    if (session && (cleanStart || this.cluster)) {
      // In a cluster the stored session is the truth (another node may have queued to it).
      if (cleanStart) this.endSession(session);
      else this.discardSession(session, false);
      session = undefined;
    }
    if (mustStore || session?.persistent) return this.openStoredSession(record, cleanStart, session, persistent, mustStore);
    // Nothing to store (a clean, will-less session on a single node): no await, so CONNACK can
    // leave in the same event-loop turn as the CONNECT arrived.
    return this.finishOpen(record, session, persistent, mustStore, session?.epoch ?? 0);
  }

  private async openStoredSession(
    record: SessionRecord,
    cleanStart: boolean,
    session: Session | undefined,
    persistent: boolean,
    mustStore: boolean,
  ): Promise<OpenedSession> {
    const clientId = record.clientId;
    const taken = await this.store.takeSession(record, cleanStart);
    const epoch = taken.epoch;
    if (!session && taken.previous && !cleanStart) {
      // Stored but not in memory (e.g. written by another node): rebuild it.
      session = new Session(taken.previous.record, this.isPersistent(taken.previous.record), epoch);
      session.restore(taken.previous.deliveries);
      for (const id of taken.previous.incomingQos2) session.incomingQos2.add(id);
      for (const sub of taken.previous.subscriptions) {
        session.subscriptions.set(sub.filter, sub);
        this.addToIndex(clientId, sub);
      }
    }
    return this.finishOpen(record, session, persistent, mustStore, epoch);
  }

  private finishOpen(record: SessionRecord, found: Session | undefined, persistent: boolean, mustStore: boolean, epoch: number): OpenedSession {
    const clientId = record.clientId;
    let session = found;
    const present = session !== undefined;
    if (!session) session = new Session(record, persistent, epoch);
    session.record = record;
    session.persistent = persistent;
    session.epoch = epoch;
    if (!mustStore && present && !persistent) {
      // Resumed into a non-persistent session: it no longer needs to be stored.
      void this.store.deleteSession(clientId).catch((err) => this.logger.warn({ err, clientId }, 'store delete failed'));
    }
    this.sessions.set(clientId, session);
    return { session, present };
  }

  attach(clientId: string, target: DeliveryTarget, cleanStart = false): void {
    this.targets.set(clientId, target);
    this.stats.connectionsTotal++;
    const session = this.sessions.get(clientId);
    if (session) this.cluster?.sessionConnected(session, cleanStart);
  }

  /**
   * The connection of a session ended. `publishWill` says whether the will is due (abnormal end
   * or DISCONNECT 0x04); `record` is the final session record (expiry may have changed on
   * DISCONNECT).
   */
  async detach(target: DeliveryTarget, session: Session, publishWill: boolean): Promise<void> {
    const clientId = session.clientId;
    if (this.targets.get(clientId) === target) this.targets.delete(clientId);
    if (this.sessions.get(clientId) !== session) return; // already replaced (taken over)
    if (session.evicted) {
      // Taken over on another node: that node owns the session now; nothing to write.
      this.discardSession(session, false);
      return;
    }
    const will = publishWill ? session.record.will : undefined;
    const record: SessionRecord = { ...session.record, nodeId: undefined, disconnectedAt: Date.now() };
    if (!will) delete record.will;
    session.record = record;
    if (!this.isPersistent(record)) {
      // The session ends with the connection (Session Expiry 0): its will goes out now.
      this.endSession(session);
      if (will) await this.publishWill(clientId, will);
      return;
    }
    if (this.cluster) record.nodeId = this.options.nodeId; // this node runs its timers
    try {
      await this.store.updateSession(record, session.epoch);
    } catch (err) {
      // Stale epoch: the session moved on; its new owner decides about it.
      this.logger.warn({ err, clientId }, 'could not record disconnect');
      this.discardSession(session, false);
      return;
    }
    this.cluster?.sessionDisconnected(session);
    if (will) this.scheduleWill(session, will);
    this.scheduleExpiry(session);
  }

  /**
   * A session of another node (dead, or this node's previous life) whose timers this node takes
   * over: the session is kept offline here so its will and expiry run [MQTT-3.1.3-9].
   */
  async adoptOffline(record: SessionRecord, epoch: number): Promise<Session> {
    const session = new Session(record, this.isPersistent(record), epoch);
    const old = this.sessions.get(record.clientId);
    if (old && old !== session) this.discardSession(old, false);
    this.sessions.set(record.clientId, session);
    if (!session.persistent) {
      // Session Expiry 0: the session ended with its connection; the will goes out now.
      if (record.will) await this.fireWill(session, record.will);
      this.endSession(session);
      return session;
    }
    if (record.will) this.scheduleWill(session, record.will);
    this.scheduleExpiry(session);
    return session;
  }

  /**
   * Another node took this client's session over: close the local connection (v5: 0x8E) and
   * forget the local copy without writing to the store. The old connection's will goes out
   * unless the new connection resumed the session and the will has a delay (MQTT 5.0 §3.1.2.5).
   */
  async evict(clientId: string, cleanStart: boolean): Promise<void> {
    const session = this.sessions.get(clientId);
    if (!session) return;
    session.evicted = true;
    const target = this.targets.get(clientId);
    const will = target ? session.record.will : undefined;
    this.cancelWill(clientId);
    this.cancelExpiry(clientId);
    if (target) await target.kick(0x8e, 'session taken over');
    if (this.sessions.get(clientId) === session) this.discardSession(session, false);
    if (will && (cleanStart || will.delayInterval === 0)) await this.publishWill(clientId, will);
  }

  /** Session ended (expired, clean start, or non-persistent disconnect): forget everything. */
  private endSession(session: Session): void {
    this.discardSession(session, true);
    this.cluster?.sessionEnded(session.clientId, session.epoch);
    void this.store.deleteSession(session.clientId, session.epoch).catch(() => undefined);
  }

  /** Forgets the local copy of a session; `routes` also removes its subscriptions from routing. */
  private discardSession(session: Session, routes: boolean): void {
    if (routes) this.unindexClient(session.clientId, this.indexedFilters(session.clientId));
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    this.cancelExpiry(session.clientId);
    this.cancelWill(session.clientId);
  }

  private scheduleWill(session: Session, will: WillRecord): void {
    // The will waits for the Will Delay Interval or the end of the session, whichever is first.
    const delayS = Math.min(will.delayInterval, session.record.expiryInterval);
    const since = session.record.disconnectedAt ?? Date.now();
    const due = since + delayS * 1000;
    const fire = () => {
      this.willTimers.delete(session.clientId);
      void this.fireWill(session, will);
    };
    const wait = due - Date.now();
    if (wait <= 0) {
      fire();
      return;
    }
    this.willTimers.set(session.clientId, setTimeout(fire, Math.min(wait, MAX_TIMER_MS)).unref());
  }

  /**
   * Publishes a pending will once: only if removing it from the stored session succeeds under
   * this session's epoch (a session that moved to another node, or was resumed, keeps it).
   */
  private async fireWill(session: Session, will: WillRecord): Promise<void> {
    const current = this.sessions.get(session.clientId);
    if ((current && current !== session) || this.targets.has(session.clientId)) return;
    const rec = { ...session.record };
    delete rec.will;
    session.record = rec;
    if (session.persistent || this.cluster) {
      try {
        await this.store.updateSession(rec, session.epoch);
      } catch (err) {
        this.logger.debug({ err, clientId: session.clientId }, 'will not fired: session moved');
        return;
      }
    }
    await this.publishWill(session.clientId, will);
  }

  private cancelWill(clientId: string): void {
    const t = this.willTimers.get(clientId);
    if (t) {
      clearTimeout(t);
      this.willTimers.delete(clientId);
    }
  }

  private async publishWill(clientId: string, will: WillRecord): Promise<void> {
    if (this.closed) return;
    const now = Date.now();
    const { messageExpiryInterval, ...props } = will.properties ?? {};
    const message: StoredMessage = {
      id: this.nextMessageId(),
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties: Object.keys(props).length ? props : undefined,
      createdAt: now,
      expiresAt: messageExpiryInterval !== undefined ? now + messageExpiryInterval * 1000 : undefined,
    };
    try {
      await this.publish(message, { clientId });
      this.logger.debug({ clientId, topic: will.topic }, 'will published');
    } catch (err) {
      this.logger.warn({ err, clientId }, 'will publish failed');
    }
  }

  private scheduleExpiry(session: Session): void {
    const rec = session.record;
    let expiryS = rec.expiryInterval;
    if (rec.protocolVersion !== 5 && this.options.persistentClientExpiration > 0) {
      expiryS = Math.min(expiryS, this.options.persistentClientExpiration);
    }
    if (expiryS >= 0xffffffff) return; // never expires [MQTT-3.1.2-23]
    const due = (rec.disconnectedAt ?? Date.now()) + expiryS * 1000;
    const arm = () => {
      const wait = due - Date.now();
      if (wait > 0) {
        this.expiryTimers.set(session.clientId, setTimeout(arm, Math.min(wait, MAX_TIMER_MS)).unref());
        return;
      }
      this.expiryTimers.delete(session.clientId);
      if (this.sessions.get(session.clientId) !== session || this.targets.has(session.clientId)) return;
      // A pending will goes out when the session ends, whichever comes first.
      const will = session.record.will;
      this.logger.debug({ clientId: session.clientId }, 'session expired');
      if (will && this.willTimers.has(session.clientId)) {
        this.cancelWill(session.clientId);
        void this.fireWill(session, will).then(() => this.endSession(session));
      } else {
        this.endSession(session);
      }
    };
    arm();
  }

  private cancelExpiry(clientId: string): void {
    const t = this.expiryTimers.get(clientId);
    if (t) {
      clearTimeout(t);
      this.expiryTimers.delete(clientId);
    }
  }

  // ---------------------------------------------------------------- subscriptions

  /** Adds subscriptions of any client (local or on another node) to routing. */
  indexSubscriptions(clientId: string, subs: SubscriptionRecord[]): void {
    for (const sub of subs) this.addToIndex(clientId, sub);
  }

  /** Removes subscriptions of a client from routing. */
  unindexClient(clientId: string, filters: string[]): void {
    for (const f of filters) this.removeFromIndex(clientId, f);
  }

  /** Applies a retained-message change made on another node. */
  applyRetained(topic: string, message: StoredMessage | undefined): void {
    if (message) this.retained.set(topic, message);
    else this.retained.delete(topic);
  }

  /** Filters routed to a client (wherever it is). */
  indexedFilters(clientId: string): string[] {
    const set = this.clientFilters.get(clientId);
    return set ? [...set] : [];
  }

  private addToIndex(clientId: string, sub: SubscriptionRecord): void {
    const set = this.clientFilters.get(clientId);
    if (set) set.add(sub.filter);
    else this.clientFilters.set(clientId, new Set([sub.filter]));
    const shared = parseSharedFilter(sub.filter);
    if (shared && shared !== 'invalid') {
      this.subscriptions.add(shared.filter, `${shared.group}\u0000${clientId}`, subEntry(clientId, sub, shared.group));
    } else {
      this.subscriptions.add(sub.filter, clientId, subEntry(clientId, sub));
    }
  }

  private removeFromIndex(clientId: string, filter: string): void {
    const set = this.clientFilters.get(clientId);
    if (set) {
      set.delete(filter);
      if (set.size === 0) this.clientFilters.delete(clientId);
    }
    const shared = parseSharedFilter(filter);
    if (shared && shared !== 'invalid') this.subscriptions.remove(shared.filter, `${shared.group}\u0000${clientId}`);
    else this.subscriptions.remove(filter, clientId);
  }

  /**
   * Adds or replaces subscriptions of a session [MQTT-3.8.4-3]. Routing sees them at once; the
   * promise resolves when a persistent session's subscriptions are stored. Returns, per
   * subscription, whether it existed before (for Retain Handling 1).
   */
  subscribe(session: Session, subs: SubscriptionRecord[]): { existed: boolean[]; stored: Promise<void> } {
    const existed: boolean[] = [];
    for (const sub of subs) {
      existed.push(session.subscriptionsView.has(sub.filter));
      session.subscriptions.set(sub.filter, sub);
      this.addToIndex(session.clientId, sub);
    }
    const shared = session.persistent || this.cluster !== undefined;
    let stored = shared ? this.store.addSubscriptions(session.clientId, session.epoch, subs) : Promise.resolve();
    if (this.cluster && subs.length > 0) {
      // Other nodes learn of the subscriptions only once they are stored under this epoch: a
      // connection that already lost the session (takeover on another node, fenced write) must
      // not add routes the stored session does not have (invariant 3).
      const cluster = this.cluster;
      stored = stored.then(
        () => cluster.subscribed(session.clientId, subs, session.epoch),
        (err: unknown) => this.sessionWriteRefused(session, err, subs.map((x) => x.filter)),
      );
    }
    return { existed, stored };
  }

  /**
   * A subscription change of a session was refused by the store. Stale epoch: the session was
   * taken over elsewhere; this connection gets DISCONNECT 0x8E (not the channel's generic 0x80),
   * and the routes it added locally are dropped again unless the session's new owner has them.
   * Rethrows, so the channel does not acknowledge.
   */
  private sessionWriteRefused(session: Session, err: unknown, filters: string[]): never {
    if ((err as { code?: string }).code === 'SKEIN_STALE_EPOCH') {
      const target = this.targets.get(session.clientId);
      const closing = target ? target.kick(0x8e, 'session taken over') : Promise.resolve();
      if (filters.length > 0) void closing.then(() => this.resyncRoutes(session.clientId, filters));
    }
    throw err;
  }

  /** Makes this node's routes for a client it does not serve equal to the stored subscriptions. */
  private async resyncRoutes(clientId: string, filters: string[]): Promise<void> {
    try {
      const snap = await this.store.getSession(clientId);
      if (this.sessions.has(clientId)) return; // served here again: the local session is the truth
      const keep = new Set((snap?.subscriptions ?? []).map((x) => x.filter));
      for (const f of filters) if (!keep.has(f)) this.removeFromIndex(clientId, f);
    } catch (err) {
      this.logger.warn({ err, clientId }, 'could not resynchronize routes');
    }
  }

  unsubscribe(session: Session, filters: string[]): { existed: boolean[]; stored: Promise<void> } {
    const existed: boolean[] = [];
    for (const f of filters) {
      const had = session.subscriptions.delete(f);
      existed.push(had);
      if (had) this.removeFromIndex(session.clientId, f);
    }
    const shared = session.persistent || this.cluster !== undefined;
    let stored = shared ? this.store.removeSubscriptions(session.clientId, session.epoch, filters) : Promise.resolve();
    if (this.cluster) {
      const cluster = this.cluster;
      // As for subscribe: told to the other nodes once stored under this epoch.
      stored = stored.then(
        () => cluster.unsubscribed(session.clientId, filters, session.epoch),
        (err: unknown) => this.sessionWriteRefused(session, err, []),
      );
    }
    return { existed, stored };
  }

  /** Retained messages matching a filter, not expired, for delivery on subscribe [MQTT-3.3.1-9]. */
  retainedFor(filter: string): StoredMessage[] {
    const out: StoredMessage[] = [];
    const now = Date.now();
    this.retained.matchFilter(filter, (_topic, msg) => {
      if (msg.expiresAt === undefined || msg.expiresAt > now) out.push(msg);
    });
    return out;
  }

  // ---------------------------------------------------------------- publish

  /**
   * Routes one application message to every matching session. Resolves once everything that must
   * be durable is durable (the caller acknowledges the publisher then); rejects if the store
   * failed, in which case the publisher must not be acknowledged.
   */
  async publish(message: StoredMessage, origin: PublishOrigin): Promise<PublishOutcome> {
    return this.publishNow(message, origin);
  }

  /**
   * `publish` without the promise when nothing has to be stored: routing and delivery to
   * connected clients are synchronous, so a message that needs no store write (QoS 0, clean
   * subscribers) is acknowledged in the same event-loop turn, with no promise allocated.
   */
  publishNow(message: StoredMessage, origin: PublishOrigin): PublishOutcome | Promise<PublishOutcome> {
    if (!origin.volatile) this.stats.messagesReceived++;
    let retain: 'set' | 'delete' | undefined;
    if (message.retain && origin.volatile) {
      this.retained.set(message.topic, message);
    } else if (message.retain) {
      // A retained message with an empty payload deletes the retained message [MQTT-3.3.1-6].
      if (message.payload.length === 0) {
        retain = 'delete';
        this.retained.delete(message.topic);
      } else {
        retain = 'set';
        this.retained.set(message.topic, message);
      }
    }
    let remote: Map<string, ForwardedDelivery[]> | undefined;

    const targets = this.route(message, origin.clientId);
    let matched = 0;
    // Created when a persistent session needs a store write (most messages need none).
    let durable: NewDelivery[] | undefined;
    let durableSessions: Array<Session | undefined> | undefined;
    for (let i = 0; i < targets.length; i++) {
      const agg = targets[i]!;
      const clientId = agg.clientId;
      // No Local: not to the publisher's own subscription [MQTT-3.8.3-3].
      if (agg.noLocal && clientId === origin.clientId) continue;
      matched++;
      const qos = (agg.qos < message.qos ? agg.qos : message.qos) as QoS;
      const session = this.sessions.get(clientId);
      if (this.cluster && (!session || !this.targets.has(clientId))) {
        // Not connected here: connected to another node, or offline (its queue is in the store).
        const where = this.cluster.locate(clientId);
        if (!where) continue;
        const retainFlag = message.retain && agg.retainAsPublished;
        if (qos > 0 && where.persistent) {
          (durable ??= []).push({ clientId, qos, retain: retainFlag, subscriptionIds: agg.subscriptionIds });
          (durableSessions ??= []).push(undefined);
        } else if (where.node && where.node !== this.options.nodeId) {
          remote ??= new Map();
          const list = remote.get(where.node);
          const d: ForwardedDelivery = { c: clientId, q: qos, r: retainFlag, s: agg.subscriptionIds };
          if (list) list.push(d);
          else remote.set(where.node, [d]);
        }
        continue;
      }
      if (!session) continue;
      // Retain As Published: keep the RETAIN flag only for subscriptions that asked [MQTT-3.3.1-12],
      // otherwise it is cleared on normal delivery [MQTT-3.3.1-13].
      const retainFlag = message.retain && agg.retainAsPublished;
      const target = this.targets.get(clientId);
      if (target && !this.authorizer.authorizeDelivery(target.identity, message.topic)) continue;
      if (qos === 0) {
        if (target) target.sendQos0(message, retainFlag, agg.subscriptionIds);
        else if (session.persistent && this.options.queueQos0Messages) {
          this.queueLocal(session, message, 0, retainFlag, agg.subscriptionIds);
        }
        continue;
      }
      if (session.persistent) {
        if (!session.canQueue(message.payload.length, this.options)) {
          this.stats.drop('queue_full');
          continue;
        }
        (durable ??= []).push({ clientId, qos, retain: retainFlag, subscriptionIds: agg.subscriptionIds });
        (durableSessions ??= []).push(session);
      } else if (this.queueLocal(session, message, qos, retainFlag, agg.subscriptionIds)) {
        target?.pump();
      }
    }

    if (remote) for (const [node, list] of remote) this.cluster!.forward(node, message, list);
    if (durable === undefined && retain === undefined && origin.incomingQos2 === undefined) {
      return outcomeOf(matched);
    }
    return this.commitDurable(message, origin, matched, durable ?? [], durableSessions ?? [], retain);
  }

  /** The part of `publish` that waits for the store: queue entries of persistent sessions, the
   *  retained message, the inbound QoS 2 packet id. */
  private async commitDurable(
    message: StoredMessage,
    origin: PublishOrigin,
    matched: number,
    durable: NewDelivery[],
    durableSessions: Array<Session | undefined>,
    retain: 'set' | 'delete' | undefined,
  ): Promise<PublishOutcome> {
    const result = await this.store.commitPublish({
      message,
      deliveries: durable,
      retain,
      incomingQos2: origin.incomingQos2,
      // In a cluster the subscriber's queue may live on no node at all: bound it in the store.
      maxQueued: this.cluster ? this.options.maxQueuedMessages : undefined,
    });
    if (retain && this.cluster) this.cluster.retainedChanged(message.topic, retain === 'set' ? message : undefined);
    let stored: Map<string, ForwardedDelivery[]> | undefined;
    for (let i = 0; i < durable.length; i++) {
      const seq = result.seqs[i]!;
      if (seq < 0) {
        if (seq === -2) this.stats.drop('queue_full');
        continue;
      }
      const d = durable[i]!;
      let session = durableSessions[i];
      if (this.cluster) {
        // Who serves the session is read atomically with the commit: an entry committed after a
        // takeover was not in the new owner's snapshot, so that owner must be told about it.
        const owner = result.owners[i];
        if (owner !== this.options.nodeId) {
          if (owner) {
            stored ??= new Map();
            const fd: ForwardedDelivery = { c: d.clientId, q: d.qos, r: d.retain, s: d.subscriptionIds, seq };
            const list = stored.get(owner);
            if (list) list.push(fd);
            else stored.set(owner, [fd]);
          }
          continue;
        }
        session ??= this.sessions.get(d.clientId);
      }
      if (!session || this.sessions.get(session.clientId) !== session) continue;
      session.pushQueued({ seq, message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds, phase: 'queued' });
      this.targets.get(session.clientId)?.pump();
    }
    if (stored) for (const [node, list] of stored) this.cluster!.forward(node, message, list);
    return outcomeOf(matched);
  }

  /** Deliveries forwarded by another node for clients connected here. */
  deliverForwarded(message: StoredMessage, deliveries: ForwardedDelivery[]): void {
    for (const d of deliveries) {
      const session = this.sessions.get(d.c);
      const target = this.targets.get(d.c);
      if (d.seq !== undefined) {
        // A stored entry for a session this node serves (possibly still finishing its CONNECT:
        // the session exists from the moment the store handed it over).
        if (!session || session.evicted) continue;
        session.pushQueued({ seq: d.seq, message, qos: d.q, retain: d.r, subscriptionIds: d.s, phase: 'queued' });
        target?.pump();
        continue;
      }
      if (!session || !target) continue;
      if (d.q === 0) {
        target.sendQos0(message, d.r, d.s);
      } else if (this.queueLocal(session, message, d.q, d.r, d.s)) {
        target.pump();
      }
    }
  }

  /** Queues a delivery in memory only (non-persistent sessions, or QoS 0 kept offline). */
  private queueLocal(session: Session, message: StoredMessage, qos: QoS, retain: boolean, subscriptionIds?: number[]): boolean {
    if (!session.canQueue(message.payload.length, this.options)) {
      this.stats.drop('queue_full');
      return false;
    }
    session.pushQueued({ seq: session.localSeq(), message, qos, retain, subscriptionIds, phase: 'queued' });
    return true;
  }

  /**
   * Queues retained messages for a session that just subscribed (retained messages are sent with
   * RETAIN set [MQTT-3.3.1-9]). Persistent sessions get them durably.
   */
  async deliverRetained(session: Session, sub: SubscriptionRecord, messages: StoredMessage[]): Promise<void> {
    const target = this.targets.get(session.clientId);
    for (const message of messages) {
      const qos = (sub.qos < message.qos ? sub.qos : message.qos) as QoS;
      const subscriptionIds = sub.subscriptionId !== undefined ? [sub.subscriptionId] : undefined;
      if (target && !this.authorizer.authorizeDelivery(target.identity, message.topic)) continue;
      if (qos === 0) {
        target?.sendQos0(message, true, subscriptionIds);
      } else if (session.persistent) {
        const res = await this.store.commitPublish({
          message,
          deliveries: [{ clientId: session.clientId, qos, retain: true, subscriptionIds }],
        });
        const seq = res.seqs[0]!;
        if (seq >= 0 && this.sessions.get(session.clientId) === session) {
          session.pushQueued({ seq, message, qos, retain: true, subscriptionIds, phase: 'queued' });
        }
      } else {
        this.queueLocal(session, message, qos, true, subscriptionIds);
      }
    }
    this.targets.get(session.clientId)?.pump();
  }

  /**
   * Finds the sessions a message goes to: one aggregate per client (highest QoS of its matching
   * subscriptions and all their Subscription Identifiers [MQTT-3.3.4-3]), and for each shared
   * subscription group exactly one member (MQTT 5.0 §4.8.2), preferring connected ones.
   */
  private route(message: StoredMessage, publisher: string | undefined): readonly RouteTarget[] {
    const m = this.subscriptions.matchList(message.topic);
    // Each client matched once and no shared subscription (the usual case): the subscriptions
    // are the targets, as they are, with nothing allocated per publish. Worked out once per
    // cached match result.
    let direct = m.meta as SubEntry[] | null | undefined;
    if (direct === undefined) {
      direct = m.distinct && m.entries.every((e) => e.value.group === undefined) ? m.entries.map((e) => e.value) : null;
      m.meta = direct;
    }
    if (direct !== null) return direct;
    // Otherwise one aggregate per client and one member per share group, from the same entries.
    // A fresh map per publish: reusing one (clear()) measured slower in the fan-out benchmark
    // (V8 gives a cleared map a new small table that then grows again).
    const out = new Map<string, RouteTarget>();
    let groups: Map<string, SubEntry[]> | undefined;
    for (const { value: entry, filter } of m.entries) {
      if (entry.group !== undefined) {
        groups ??= new Map();
        const gk = `${entry.group}\u0000${filter}`;
        const list = groups.get(gk);
        if (list) list.push(entry);
        else groups.set(gk, [entry]);
        continue;
      }
      // No Local: not to the publisher's own subscription [MQTT-3.8.3-3].
      if (entry.noLocal && entry.clientId === publisher) continue;
      this.aggregate(out, entry);
    }
    if (groups) {
      for (const [gk, members] of groups) {
        const chosen = this.pickShareMember(gk, members);
        if (chosen) this.aggregate(out, chosen);
      }
    }
    return [...out.values()];
  }

  /** Adds one subscription entry to its client's aggregate (from the entry's own target fields). */
  private aggregate(out: Map<string, RouteTarget>, entry: SubEntry): void {
    const agg = out.get(entry.clientId);
    if (!agg) {
      out.set(entry.clientId, {
        clientId: entry.clientId,
        qos: entry.qos,
        retainAsPublished: entry.retainAsPublished,
        // A copy: the entry's list is shared and never modified.
        subscriptionIds: entry.subscriptionIds?.slice(),
        noLocal: false, // No Local is applied while aggregating
      });
      return;
    }
    if (entry.qos > agg.qos) agg.qos = entry.qos;
    if (entry.retainAsPublished) agg.retainAsPublished = true;
    if (entry.subscriptionIds !== undefined) (agg.subscriptionIds ??= []).push(...entry.subscriptionIds);
  }

  /** Round robin over the group's members, connected members first. */
  private pickShareMember(groupKey: string, members: SubEntry[]): SubEntry | undefined {
    const start = this.shareCursor.get(groupKey) ?? 0;
    this.shareCursor.set(groupKey, start + 1);
    const n = members.length;
    for (let i = 0; i < n; i++) {
      const m = members[(start + i) % n]!;
      if (this.targets.has(m.clientId)) return m;
    }
    if (this.cluster) {
      // No local member connected: one connected to another node.
      for (let i = 0; i < n; i++) {
        const m = members[(start + i) % n]!;
        if (this.cluster.locate(m.clientId)?.node) return m;
      }
    }
    return members[start % n];
  }

  // ---------------------------------------------------------------- store mirroring

  /** Records that a queued entry was sent with a packet id (persistent sessions only). */
  noteSent(session: Session, entry: DeliveryEntry): void {
    if (!session.persistent || entry.packetId === undefined) return;
    this.noteDeliveryOp(session, entry.seq, entry.packetId);
  }

  /** One `updateDeliveries` pair (seq 0: complete), written now or when the batch ends. */
  private noteDeliveryOp(session: Session, seq: number, packetId: number): void {
    let pending = this.deliveryOps.get(session);
    if (pending !== undefined && pending.epoch !== session.epoch) {
      this.flushDeliveryOps();
      pending = undefined;
    }
    if (pending === undefined) this.deliveryOps.set(session, (pending = { epoch: session.epoch, ops: [] }));
    pending.ops.push(seq, packetId);
    if (this.batchDepth === 0) this.flushDeliveryOps();
  }

  private flushDeliveryOps(): void {
    for (const [session, { epoch, ops }] of this.deliveryOps) {
      this.sessionStore.updateDeliveries(session.clientId, epoch, ops).catch((err) => this.storeFault(session, err));
    }
    this.deliveryOps.clear();
  }

  /** Stores that an entry was given a packet id; resolves false (and kicks) on failure. */
  persistSent(session: Session, entry: DeliveryEntry): Promise<boolean> {
    return this.store.markSent(session.clientId, session.epoch, entry.seq, entry.packetId!).then(
      () => true,
      (err) => {
        this.storeFault(session, err);
        return false;
      },
    );
  }

  /** Stores that PUBREC was received for a packet id; resolves false (and kicks) on failure. */
  persistReleased(session: Session, packetId: number): Promise<boolean> {
    return this.store.markReleased(session.clientId, session.epoch, packetId).then(
      () => true,
      (err) => {
        this.storeFault(session, err);
        return false;
      },
    );
  }

  noteReleased(session: Session, packetId: number): void {
    if (!session.persistent) return;
    this.store.markReleased(session.clientId, session.epoch, packetId).catch((err) => this.storeFault(session, err));
  }

  noteCompleted(session: Session, packetId: number): void {
    if (!session.persistent) return;
    this.noteDeliveryOp(session, 0, packetId);
  }

  noteDropped(session: Session, seqs: number[]): void {
    if (!session.persistent || seqs.length === 0) return;
    this.store.dropDeliveries(session.clientId, session.epoch, seqs).catch((err) => this.storeFault(session, err));
  }

  private storeFault(session: Session, err: unknown): void {
    this.logger.warn({ err, clientId: session.clientId }, 'session write failed');
    const target = this.targets.get(session.clientId);
    // A refused write means this node no longer owns the session (or the store is failing):
    // stop serving it rather than diverge from the stored state.
    if (target) void target.kick((err as { code?: string }).code === 'SKEIN_STALE_EPOCH' ? 0x8e : 0x80);
  }
}
