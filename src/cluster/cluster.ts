/**
 * The cluster layer of one node: implements the broker's `ClusterLink` over the bus.
 *
 * - Directory: where each client of the cluster is (node or offline) and whether its session is
 *   persistent, with the session epoch so late events cannot undo newer ones.
 * - Routes: every node's topic trie holds every subscription of the cluster, loaded from the store
 *   at start and kept current by the change feed.
 * - Takeover: a `conn` event for a client connected here with a newer epoch evicts the local
 *   connection (v5 DISCONNECT 0x8E); the store's epoch fencing stops any late write from it.
 * - Chores (lease holder): sessions of dead nodes are adopted (epoch bumped, so the dead node can
 *   never write to them again), their wills fire once after the will delay, expiry keeps running.
 * - Self-fencing: a node that cannot renew its heartbeat disconnects its clients and refuses new
 *   ones until Redis is back, so it never serves sessions the cluster already moved.
 */
import type { Logger } from 'pino';
import type { Broker, ClusterLink, ForwardedDelivery } from '../broker/broker.js';
import { RC } from '../codec/reason-codes.js';
import type { Session } from '../session/session.js';
import type { SessionRecord, Store, StoredMessage, SubscriptionRecord } from '../store/types.js';
import type { ClusterBus } from './bus.js';

interface Location {
  node?: string;
  persistent: boolean;
  epoch: number;
}

/** Change-feed events (short keys: they are on the wire for every change). */
type ClusterEvent =
  /** `s`: the session's subscriptions as its new owner loaded them (absent from older nodes). */
  | { t: 'conn'; o: string; c: string; e: number; p: boolean; clean: boolean; s?: SubscriptionRecord[] }
  | { t: 'disc'; o: string; c: string; e: number; p: boolean }
  | { t: 'end'; o: string; c: string; e: number }
  | { t: 'sub'; o: string; c: string; s: SubscriptionRecord[]; e?: number }
  | { t: 'unsub'; o: string; c: string; f: string[]; e?: number }
  | { t: 'ret'; o: string; topic: string; m?: StoredMessage };

interface InboxItem {
  m: StoredMessage;
  d: ForwardedDelivery[];
}

export class ClusterNode implements ClusterLink {
  readonly directory = new Map<string, Location>();
  private healthy = true;
  private choresRunning = false;

  constructor(
    readonly bus: ClusterBus,
    private readonly broker: Broker,
    private readonly store: Store,
    private readonly logger: Logger,
  ) {
    bus.onEvents = (events) => {
      for (const e of events) this.apply(e as ClusterEvent);
    };
    bus.onInbox = (items) => {
      for (const it of items as InboxItem[]) this.broker.deliverForwarded(it.m, it.d);
    };
    bus.onHealth = (ok) => this.setHealthy(ok);
    bus.onLeaseTick = () => void this.chores();
    bus.clientCount = () => this.broker.clientCounts.connected;
  }

  get nodeId(): string {
    return this.bus.opts.nodeId;
  }

  /** False while this node cannot reach Redis: new connections are refused. */
  get accepting(): boolean {
    return this.healthy;
  }

  /** Loads the cluster's sessions and routes, adopts this node's own leftovers, starts tailing. */
  async start(): Promise<void> {
    await this.bus.connect();
    await this.bus.preparePositions();
    await this.broker.loadRetained();
    const sessions = await this.store.listSessions();
    for (const { record, epoch } of sessions) {
      const connected = record.disconnectedAt === undefined;
      this.directory.set(record.clientId, {
        node: connected ? record.nodeId : undefined,
        persistent: this.broker.isPersistent(record),
        epoch,
      });
    }
    for (const { clientId, subscription } of await this.store.listSubscriptions()) {
      this.broker.indexSubscriptions(clientId, [subscription]);
    }
    await this.bus.start();
    // Sessions this node held before a crash: adopt them now (as a dead node's would be).
    await this.adoptNode(this.nodeId);
    this.logger.info({ sessions: sessions.length, nodeId: this.nodeId }, 'cluster state loaded');
  }

  async stop(deregister = true): Promise<void> {
    await this.bus.stop(deregister);
  }

  // ---------------------------------------------------------------- ClusterLink

  locate(clientId: string): { node?: string; persistent: boolean } | undefined {
    return this.directory.get(clientId);
  }

  forward(node: string, message: StoredMessage, deliveries: ForwardedDelivery[]): void {
    this.bus.send(node, { m: message, d: deliveries } satisfies InboxItem);
  }

  sessionConnected(session: Session, cleanStart: boolean): void {
    const c = session.clientId;
    const known = this.directory.get(c);
    if (known && known.epoch > session.epoch) {
      // A newer takeover on another node was applied here while this connection was still
      // opening its session (its `conn` event overtook our store reply): this connection has
      // already lost. Evict it once its CONNACK is out, so it gets DISCONNECT 0x8E like any
      // taken-over connection instead of staying up with a fenced session (invariant 3).
      setImmediate(() => {
        if (this.broker.sessions.get(c) === session) void this.broker.evict(c, false);
      });
      return;
    }
    this.directory.set(c, { node: this.nodeId, persistent: session.persistent, epoch: session.epoch });
    // With the subscriptions the session has now: they are what the store held when this node
    // took it, so other nodes route by them even if a `sub` of the previous owner, stored just
    // before the takeover, reaches them after this event (and is dropped there as outdated).
    this.emit({ t: 'conn', o: this.nodeId, c, e: session.epoch, p: session.persistent, clean: cleanStart, s: [...session.subscriptionsView.values()] });
  }

  sessionDisconnected(session: Session): void {
    const c = session.clientId;
    this.directory.set(c, { node: undefined, persistent: true, epoch: session.epoch });
    this.emit({ t: 'disc', o: this.nodeId, c, e: session.epoch, p: true });
  }

  sessionEnded(clientId: string, epoch: number): void {
    const loc = this.directory.get(clientId);
    if (loc && loc.epoch <= epoch) this.directory.delete(clientId);
    this.emit({ t: 'end', o: this.nodeId, c: clientId, e: epoch });
  }

  subscribed(clientId: string, subs: SubscriptionRecord[], epoch: number): void {
    this.emit({ t: 'sub', o: this.nodeId, c: clientId, s: subs, e: epoch });
  }

  unsubscribed(clientId: string, filters: string[], epoch: number): void {
    this.emit({ t: 'unsub', o: this.nodeId, c: clientId, f: filters, e: epoch });
  }

  retainedChanged(topic: string, message: StoredMessage | undefined): void {
    this.emit({ t: 'ret', o: this.nodeId, topic, m: message });
  }

  private emit(e: ClusterEvent): void {
    this.bus.publishEvent(e);
  }

  // ---------------------------------------------------------------- events from other nodes

  private apply(e: ClusterEvent): void {
    if (e.o === this.nodeId) return; // applied locally already
    switch (e.t) {
      case 'conn': {
        const known = this.directory.get(e.c);
        if (known && known.epoch > e.e) return;
        this.directory.set(e.c, { node: e.o, persistent: e.p, epoch: e.e });
        const local = this.broker.sessions.get(e.c);
        if (local && local.epoch < e.e) void this.broker.evict(e.c, e.clean);
        if (local && local.epoch >= e.e) return;
        if (e.s !== undefined) {
          // The new owner's subscriptions replace whatever this node routed for the client; later
          // changes follow as `sub` / `unsub` of this epoch or newer.
          this.broker.unindexClient(e.c, this.filtersOf(e.c));
          this.broker.indexSubscriptions(e.c, e.s);
        } else if (e.clean) {
          // (A node of an earlier version.) A clean start drops the old subscriptions everywhere;
          // new ones follow as `sub`.
          this.broker.unindexClient(e.c, this.filtersOf(e.c));
        }
        return;
      }
      case 'disc': {
        const known = this.directory.get(e.c);
        if (known && known.epoch > e.e) return;
        this.directory.set(e.c, { node: undefined, persistent: e.p, epoch: e.e });
        return;
      }
      case 'end': {
        const known = this.directory.get(e.c);
        if (known && known.epoch > e.e) return;
        this.directory.delete(e.c);
        if (!this.broker.sessions.has(e.c)) this.broker.unindexClient(e.c, this.filtersOf(e.c));
        return;
      }
      case 'sub':
      case 'unsub': {
        // A change stored under an epoch older than one this node already saw (e.g. written just
        // before a clean-start takeover that cleared the subscriptions) is outdated.
        const known = this.directory.get(e.c);
        if (e.e !== undefined && known && known.epoch > e.e) return;
        if (e.t === 'sub') this.broker.indexSubscriptions(e.c, e.s);
        else this.broker.unindexClient(e.c, e.f);
        return;
      }
      case 'ret':
        this.broker.applyRetained(e.topic, e.m);
        return;
    }
  }

  /** Filters the routing index holds for a client (remote clients have no local session). */
  private filtersOf(clientId: string): string[] {
    return this.broker.indexedFilters(clientId);
  }

  // ---------------------------------------------------------------- health and chores

  private setHealthy(ok: boolean): void {
    if (ok === this.healthy) return;
    this.healthy = ok;
    this.broker.acceptingConnections = ok;
    if (!ok) {
      // Cut off from Redis longer than our own TTL: the cluster may already have moved our
      // sessions. Stop serving them (clients reconnect through the load balancer elsewhere).
      this.logger.error({ nodeId: this.nodeId }, 'lost contact with redis: disconnecting clients');
      // 0x9C Use another server: 0x88 (Server unavailable) is a CONNACK-only code, not valid in
      // DISCONNECT (MQTT 5.0 §3.14.2.1); clients' parsers reject it and never see the reason.
      for (const t of [...this.broker.targets.values()]) void t.kick(RC.UseAnotherServer, 'node lost contact with the cluster');
    } else {
      this.logger.warn({ nodeId: this.nodeId }, 'contact with redis restored');
    }
  }

  /** Lease holder: find dead nodes and adopt their sessions. */
  private async chores(): Promise<void> {
    if (this.choresRunning) return;
    this.choresRunning = true;
    try {
      for (const n of await this.bus.nodes()) {
        if (n.alive || n.id === this.nodeId) continue;
        this.logger.warn({ node: n.id }, 'node is dead: adopting its sessions');
        await this.adoptNode(n.id);
        await this.bus.forgetNode(n.id);
      }
    } catch (err) {
      this.logger.warn({ err }, 'cluster chores failed');
    } finally {
      this.choresRunning = false;
    }
  }

  /**
   * Takes over the sessions a node owned (connected there, or disconnected there with timers
   * pending). Each is re-taken in the store (new epoch: the old owner is fenced off), marked
   * disconnected, and its will and expiry run here. A non-persistent one ends now, will first.
   */
  private async adoptNode(node: string): Promise<void> {
    if (!(await this.bus.lockCleanup(node))) return;
    try {
      const now = Date.now();
      for (const { record } of await this.store.listSessions()) {
        if (record.nodeId !== node) continue;
        if (this.broker.targets.has(record.clientId)) continue;
        const rec: SessionRecord = { ...record, nodeId: this.nodeId, disconnectedAt: record.disconnectedAt ?? now };
        const taken = await this.store.takeSession(rec, false);
        if (taken.previous?.record.nodeId !== node) continue; // someone else got there first
        const session = await this.broker.adoptOffline(rec, taken.epoch);
        if (session.persistent) {
          this.directory.set(rec.clientId, { node: undefined, persistent: true, epoch: taken.epoch });
          this.emit({ t: 'disc', o: this.nodeId, c: rec.clientId, e: taken.epoch, p: true });
        }
        this.logger.debug({ clientId: rec.clientId, from: node }, 'session adopted');
      }
    } finally {
      await this.bus.unlockCleanup(node).catch(() => undefined);
    }
  }
}
