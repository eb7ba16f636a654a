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

interface SubEntry {
  clientId: string;
  sub: SubscriptionRecord;
  /** Share Name for a shared subscription [MQTT-4.8.2]. */
  group?: string;
}

interface Aggregate {
  qos: QoS;
  retainAsPublished: boolean;
  subscriptionIds: number[] | undefined;
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
  matched: number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export class Broker {
  readonly stats = new BrokerStats();
  /** Every session alive on this node: connected ones and disconnected persistent ones. */
  readonly sessions = new Map<string, Session>();
  /** Connected clients by client id. */
  readonly targets = new Map<string, DeliveryTarget>();
  private readonly subscriptions = new TopicTrie<SubEntry>();
  private readonly retained = new RetainedTrie<StoredMessage>();
  private readonly willTimers = new Map<string, NodeJS.Timeout>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private readonly shareCursor = new Map<string, number>();
  private messageCounter = 0;
  private readonly messageIdPrefix: string;
  private closed = false;

  constructor(
    readonly options: BrokerOptions,
    readonly store: Store,
    readonly authorizer: Authorizer,
    readonly logger: Logger,
  ) {
    this.messageIdPrefix = `${options.nodeId}-${Date.now().toString(36)}-`;
  }

  /** Loads sessions, subscriptions and retained messages from the store. */
  async start(): Promise<void> {
    for (const msg of await this.store.listRetained()) this.retained.set(msg.topic, msg);
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
  async openSession(record: SessionRecord, cleanStart: boolean): Promise<{ session: Session; present: boolean }> {
    const clientId = record.clientId;
    // A new connection for this client id cancels a pending will [MQTT-3.1.2-8] [MQTT-3.1.3-9].
    this.cancelWill(clientId);
    this.cancelExpiry(clientId);
    let session = this.sessions.get(clientId);
    const persistent = this.isPersistent(record);
    const mustStore = persistent || record.will !== undefined;
    if (session && cleanStart) {
      this.discardSession(session);
      session = undefined;
    }
    let epoch = session?.epoch ?? 0;
    if (mustStore || session?.persistent) {
      const taken = await this.store.takeSession(record, cleanStart);
      epoch = taken.epoch;
      if (!session && taken.previous && !cleanStart) {
        // Stored but not in memory (e.g. written by another node): rebuild it.
        session = new Session(taken.previous.record, true, epoch);
        session.restore(taken.previous.deliveries);
        for (const id of taken.previous.incomingQos2) session.incomingQos2.add(id);
        for (const sub of taken.previous.subscriptions) {
          session.subscriptions.set(sub.filter, sub);
          this.addToIndex(clientId, sub);
        }
      }
    }
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

  attach(clientId: string, target: DeliveryTarget): void {
    this.targets.set(clientId, target);
    this.stats.connectionsTotal++;
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
    const will = publishWill ? session.record.will : undefined;
    const record: SessionRecord = { ...session.record, nodeId: undefined, disconnectedAt: Date.now() };
    if (!will) delete record.will;
    session.record = record;
    if (!this.isPersistent(record)) {
      // The session ends with the connection [MQTT-3.1.2-?]: its will goes out now.
      this.endSession(session);
      if (will) await this.publishWill(clientId, will);
      return;
    }
    // Outbound QoS 0 entries are not kept for a disconnected session unless configured.
    try {
      await this.store.updateSession(record, session.epoch);
    } catch (err) {
      this.logger.warn({ err, clientId }, 'could not record disconnect');
    }
    if (will) this.scheduleWill(session, will);
    this.scheduleExpiry(session);
  }

  /** Session ended (expired, clean start, or non-persistent disconnect): forget everything. */
  private endSession(session: Session): void {
    this.discardSession(session);
    void this.store.deleteSession(session.clientId, session.epoch).catch(() => undefined);
  }

  private discardSession(session: Session): void {
    for (const sub of session.subscriptions.values()) this.removeFromIndex(session.clientId, sub.filter);
    session.subscriptions.clear();
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    this.cancelExpiry(session.clientId);
  }

  private scheduleWill(session: Session, will: WillRecord): void {
    // The will waits for the Will Delay Interval or the end of the session, whichever is first.
    const delayS = Math.min(will.delayInterval, session.record.expiryInterval);
    const since = session.record.disconnectedAt ?? Date.now();
    const due = since + delayS * 1000;
    const fire = () => {
      this.willTimers.delete(session.clientId);
      const current = this.sessions.get(session.clientId);
      if (current && current !== session) return;
      if (this.targets.has(session.clientId)) return;
      const rec = { ...session.record };
      delete rec.will;
      session.record = rec;
      void this.store.updateSession(rec, session.epoch).catch(() => undefined);
      void this.publishWill(session.clientId, will);
    };
    const wait = due - Date.now();
    if (wait <= 0) {
      fire();
      return;
    }
    this.willTimers.set(session.clientId, setTimeout(fire, Math.min(wait, MAX_TIMER_MS)).unref());
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
      if (will && this.willTimers.has(session.clientId)) {
        this.cancelWill(session.clientId);
        void this.publishWill(session.clientId, will);
      }
      this.logger.debug({ clientId: session.clientId }, 'session expired');
      this.endSession(session);
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

  private addToIndex(clientId: string, sub: SubscriptionRecord): void {
    const shared = parseSharedFilter(sub.filter);
    if (shared && shared !== 'invalid') {
      this.subscriptions.add(shared.filter, `${shared.group}\u0000${clientId}`, { clientId, sub, group: shared.group });
    } else {
      this.subscriptions.add(sub.filter, clientId, { clientId, sub });
    }
  }

  private removeFromIndex(clientId: string, filter: string): void {
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
      existed.push(session.subscriptions.has(sub.filter));
      session.subscriptions.set(sub.filter, sub);
      this.addToIndex(session.clientId, sub);
    }
    const stored = session.persistent ? this.store.addSubscriptions(session.clientId, session.epoch, subs) : Promise.resolve();
    return { existed, stored };
  }

  unsubscribe(session: Session, filters: string[]): { existed: boolean[]; stored: Promise<void> } {
    const existed: boolean[] = [];
    for (const f of filters) {
      const had = session.subscriptions.delete(f);
      existed.push(had);
      if (had) this.removeFromIndex(session.clientId, f);
    }
    const stored = session.persistent ? this.store.removeSubscriptions(session.clientId, session.epoch, filters) : Promise.resolve();
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

    const targets = this.route(message, origin.clientId);
    const durable: NewDelivery[] = [];
    const durableSessions: Session[] = [];
    for (const [clientId, agg] of targets) {
      const session = this.sessions.get(clientId);
      if (!session) continue;
      const qos = (agg.qos < message.qos ? agg.qos : message.qos) as QoS;
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
        durable.push({ clientId, qos, retain: retainFlag, subscriptionIds: agg.subscriptionIds });
        durableSessions.push(session);
      } else if (this.queueLocal(session, message, qos, retainFlag, agg.subscriptionIds)) {
        target?.pump();
      }
    }

    if (durable.length === 0 && retain === undefined && origin.incomingQos2 === undefined) {
      return { matched: targets.size };
    }
    const result = await this.store.commitPublish({
      message,
      deliveries: durable,
      retain,
      incomingQos2: origin.incomingQos2,
    });
    for (let i = 0; i < durable.length; i++) {
      const seq = result.seqs[i]!;
      const session = durableSessions[i]!;
      if (seq < 0 || this.sessions.get(session.clientId) !== session) continue;
      const d = durable[i]!;
      session.pushQueued({ seq, message, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds, phase: 'queued' });
      this.targets.get(session.clientId)?.pump();
    }
    return { matched: targets.size };
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
   * subscription group exactly one member [MQTT-4.8.2-?], preferring connected ones.
   */
  private route(message: StoredMessage, publisher: string | undefined): Map<string, Aggregate> {
    const out = new Map<string, Aggregate>();
    let groups: Map<string, SubEntry[]> | undefined;
    this.subscriptions.match(message.topic, (entry, _key, filter) => {
      if (entry.group !== undefined) {
        groups ??= new Map();
        const gk = `${entry.group}\u0000${filter}`;
        const list = groups.get(gk);
        if (list) list.push(entry);
        else groups.set(gk, [entry]);
        return;
      }
      // No Local: not to the publisher's own subscription [MQTT-3.8.3-3].
      if (entry.sub.noLocal && entry.clientId === publisher) return;
      this.aggregate(out, entry);
    });
    if (groups) {
      for (const [gk, members] of groups) {
        const chosen = this.pickShareMember(gk, members);
        if (chosen) this.aggregate(out, chosen);
      }
    }
    return out;
  }

  private aggregate(out: Map<string, Aggregate>, entry: SubEntry): void {
    const sub = entry.sub;
    const agg = out.get(entry.clientId);
    if (!agg) {
      out.set(entry.clientId, {
        qos: sub.qos,
        retainAsPublished: sub.retainAsPublished,
        subscriptionIds: sub.subscriptionId !== undefined ? [sub.subscriptionId] : undefined,
      });
      return;
    }
    if (sub.qos > agg.qos) agg.qos = sub.qos;
    if (sub.retainAsPublished) agg.retainAsPublished = true;
    if (sub.subscriptionId !== undefined) (agg.subscriptionIds ??= []).push(sub.subscriptionId);
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
    return members[start % n];
  }

  // ---------------------------------------------------------------- store mirroring

  /** Records that a queued entry was sent with a packet id (persistent sessions only). */
  noteSent(session: Session, entry: DeliveryEntry): void {
    if (!session.persistent || entry.packetId === undefined) return;
    this.store.markSent(session.clientId, session.epoch, entry.seq, entry.packetId).catch((err) => this.storeFault(session, err));
  }

  noteReleased(session: Session, packetId: number): void {
    if (!session.persistent) return;
    this.store.markReleased(session.clientId, session.epoch, packetId).catch((err) => this.storeFault(session, err));
  }

  noteCompleted(session: Session, packetId: number): void {
    if (!session.persistent) return;
    this.store.completeDelivery(session.clientId, session.epoch, packetId).catch((err) => this.storeFault(session, err));
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
