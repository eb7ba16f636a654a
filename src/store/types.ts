/**
 * The store interface: every piece of state that must outlive a connection or a process goes
 * through here. The embedded store (default, single node) and the Redis store (cluster) both
 * implement it and both must pass the one contract suite in `contract/`.
 *
 * Rules every implementation keeps:
 * - Every write that names a session carries the session's `epoch`. A write whose epoch is not the
 *   session's current epoch is refused with `StaleEpochError` and changes nothing (fencing: a node
 *   that lost a session cannot write to it).
 * - `commitPublish` is atomic: the message body, every delivery entry, the retained change and the
 *   inbound QoS 2 packet id land together or not at all. The broker acknowledges a publisher only
 *   after it resolves.
 * - A delivery entry's `seq` is assigned by the store, increasing per session, and `loadSession`
 *   returns entries in `seq` order (this is what keeps per-publisher order [MQTT-4.6.0-5]).
 * - Returned objects are copies or immutable: callers may not mutate them, and the store may not
 *   keep references to objects it was given.
 * - Epochs are never reused for a client id, not even after the session was deleted (a backend
 *   keeps a counter that outlives sessions).
 * - `deleteSession` of an absent session is a no-op; writes naming an unknown seq or packet id
 *   are no-ops; concurrent `commitPublish` calls get seqs in call order; optional fields set to
 *   `undefined` come back absent.
 */

export type QoS = 0 | 1 | 2;
export type ProtocolVersion = 3 | 4 | 5;

export type UserProperties = Record<string, string | string[]>;

/** The MQTT 5 PUBLISH properties that travel with an application message (not topic alias or
 *  subscription identifier, which are per-hop). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

/** An application message as the broker keeps it. */
export interface StoredMessage {
  /** Unique id of this message, assigned by the publishing node (e.g. `${nodeId}-${counter}`). */
  id: string;
  topic: string;
  payload: Buffer;
  qos: QoS;
  /** The RETAIN flag as published. */
  retain: boolean;
  properties?: MessageProperties;
  /** Epoch milliseconds when the message was received. */
  createdAt: number;
  /** Epoch milliseconds after which the message must not be delivered (Message Expiry Interval). */
  expiresAt?: number;
}

/** Subscription options as granted [MQTT-3.8.3]. */
export interface SubscriptionRecord {
  /** The topic filter as sent by the client, including any `$share/{group}/` prefix. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

export interface WillRecord {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties & { messageExpiryInterval?: number };
  /** Will Delay Interval in seconds (0 when absent) [MQTT-3.1.3-9]. */
  delayInterval: number;
}

/** What is kept about a session apart from its subscriptions and messages. */
export interface SessionRecord {
  clientId: string;
  protocolVersion: ProtocolVersion;
  /** Session Expiry Interval in seconds; 0xFFFFFFFF means never [MQTT-3.1.2-23]. */
  expiryInterval: number;
  /** Node holding the connection (while `disconnectedAt` is unset), or the node that runs the
   *  session's will and expiry timers after the disconnect (clusters), or undefined. */
  nodeId?: string;
  /** Epoch milliseconds of the disconnect, or undefined while connected. */
  disconnectedAt?: number;
  will?: WillRecord;
  username?: string;
}

/**
 * One message owed to one session. Phase:
 * - `queued`: not yet sent (no packet id),
 * - `sent`: PUBLISH sent with `packetId`, waiting for PUBACK (QoS 1) or PUBREC (QoS 2),
 * - `released`: PUBREC received and PUBREL sent, waiting for PUBCOMP (QoS 2).
 */
export interface DeliveryEntry {
  seq: number;
  message: StoredMessage;
  /** Granted QoS for this delivery: min(message QoS, subscription QoS). */
  qos: QoS;
  /** RETAIN flag to send (retain as published, or retained-message delivery). */
  retain: boolean;
  subscriptionIds?: number[];
  phase: 'queued' | 'sent' | 'released';
  packetId?: number;
}

/** A delivery the broker asks the store to append to a session queue. */
export interface NewDelivery {
  clientId: string;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
}

export interface SessionSnapshot {
  record: SessionRecord;
  epoch: number;
  subscriptions: SubscriptionRecord[];
  /** Entries in seq order. */
  deliveries: DeliveryEntry[];
  /** Inbound QoS 2 packet ids for which PUBREC was sent and PUBREL not yet received. */
  incomingQos2: number[];
}

export interface TakeSessionResult {
  /** The new epoch now owning the session. */
  epoch: number;
  /** The previous state, when a session existed and cleanStart was false. */
  previous?: SessionSnapshot;
  /** True when a session existed before (whatever cleanStart was). */
  existed: boolean;
}

export interface PublishCommit {
  message: StoredMessage;
  /** Deliveries to persistent sessions; each gets a seq. */
  deliveries: NewDelivery[];
  /** When set, the retained message for `message.topic` is replaced (or deleted when `delete`). */
  retain?: 'set' | 'delete';
  /** When set, records the inbound QoS 2 packet id of the publisher in the same atomic write. */
  incomingQos2?: { clientId: string; epoch: number; packetId: number };
  /**
   * Queue bound enforced where the queue lives: a delivery to a session that already holds this
   * many entries (queued and in flight) is refused with seq -2. 0 or absent: no bound. (In a
   * cluster the publishing node does not hold the subscriber's queue, so it cannot check.)
   */
  maxQueued?: number;
}

/** Result of a commit: the seq given to each delivery, in the order of `deliveries`. Deliveries to
 *  sessions that no longer exist are dropped and reported with seq -1; deliveries refused by
 *  `maxQueued` with seq -2. */
export interface PublishCommitResult {
  seqs: number[];
  /**
   * For each delivery, the node serving the session at the moment of the commit (its record's
   * `nodeId` while `disconnectedAt` is unset), or undefined when it is disconnected or absent.
   * Read atomically with the commit: entries committed after a takeover name the new owner,
   * so the publishing node knows whom to tell (the takeover snapshot did not include them).
   */
  owners: Array<string | undefined>;
}

export class StaleEpochError extends Error {
  readonly code = 'SKEIN_STALE_EPOCH';
  constructor(readonly clientId: string, readonly epoch: number, readonly current: number | undefined) {
    super(`session ${clientId}: write with epoch ${epoch} refused, current epoch is ${current ?? 'none'}`);
    this.name = 'StaleEpochError';
  }
}

export class StoreError extends Error {
  readonly code = 'SKEIN_STORE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export interface Store {
  /** Opens the store (reads the data directory, connects...). */
  open(): Promise<void>;
  /** Flushes everything and releases resources. */
  close(): Promise<void>;

  // ---- sessions ----
  /**
   * Takes ownership of a session: bumps the epoch (creating the session when absent). With
   * `cleanStart` any previous subscriptions, deliveries and inbound QoS 2 ids are discarded.
   * The record is written as given (connected: `nodeId` set, `disconnectedAt` undefined).
   */
  takeSession(record: SessionRecord, cleanStart: boolean): Promise<TakeSessionResult>;
  /** Replaces the session record (expiry, will, disconnect time) under the epoch. */
  updateSession(record: SessionRecord, epoch: number): Promise<void>;
  /** Removes a session and everything it owns. With an epoch, only if it is still current. */
  deleteSession(clientId: string, epoch?: number): Promise<void>;
  getSession(clientId: string): Promise<SessionSnapshot | undefined>;
  /** All session records with their epochs (used at start and by the expiry sweep). */
  listSessions(): Promise<Array<{ record: SessionRecord; epoch: number }>>;

  // ---- subscriptions ----
  addSubscriptions(clientId: string, epoch: number, subs: SubscriptionRecord[]): Promise<void>;
  removeSubscriptions(clientId: string, epoch: number, filters: string[]): Promise<void>;
  /** Every subscription of every stored session (to rebuild the routing trie at start). */
  listSubscriptions(): Promise<Array<{ clientId: string; subscription: SubscriptionRecord }>>;

  // ---- messages ----
  commitPublish(commit: PublishCommit): Promise<PublishCommitResult>;
  /** Marks a `queued` entry as sent with a packet id (phase `queued` -> `sent`). Callers never
   *  call it for a `released` entry (that would restart a QoS 2 flow). */
  markSent(clientId: string, epoch: number, seq: number, packetId: number): Promise<void>;
  /** PUBREC received: the entry with this packet id moves to `released`. */
  markReleased(clientId: string, epoch: number, packetId: number): Promise<void>;
  /** PUBACK / PUBCOMP received: removes the entry with this packet id. */
  completeDelivery(clientId: string, epoch: number, packetId: number): Promise<void>;
  /** Removes entries by seq, whatever their phase (expired, too large for the client, dropped). */
  dropDeliveries(clientId: string, epoch: number, seqs: number[]): Promise<void>;
  /**
   * Several `markSent` and `completeDelivery` of one session in one call, applied in order and
   * all under one epoch check (stale: nothing is applied). `ops` is a flat list of pairs:
   * `seq, packetId` is a `markSent`, `0, packetId` a `completeDelivery` (seqs start at 1). The
   * broker gathers the ones of one event-loop step here (a drain of a backlog sends and completes
   * thousands): one record, one round trip instead of one per message.
   */
  updateDeliveries(clientId: string, epoch: number, ops: readonly number[]): Promise<void>;

  // ---- inbound QoS 2 ----
  addIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void>;
  /** PUBREL received: forget the packet id. */
  removeIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void>;

  // ---- retained ----
  /** Every retained message (the broker keeps a trie of them in memory). */
  listRetained(): Promise<StoredMessage[]>;
}
