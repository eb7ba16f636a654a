/**
 * One MQTT session's state (MQTT 5.0 section 4.1): subscriptions, messages owed to the client
 * (queued and in flight), outbound packet identifiers and inbound QoS 2 packet identifiers.
 * No I/O here: the channel drives it and mirrors changes of persistent sessions into the store.
 */
import type { DeliveryEntry, SessionRecord, SubscriptionRecord } from '../store/types.js';
import { InflightTable, NO_INFLIGHT, type InflightView } from './inflight.js';

export interface QueueLimits {
  maxQueuedMessages: number;
  maxQueuedBytes: number;
}

const NO_SUBSCRIPTIONS: ReadonlyMap<string, SubscriptionRecord> = new Map();
const NO_IDS: ReadonlySet<number> = new Set();
const NO_QUEUE: DeliveryEntry[] = [];

/**
 * The collections are created on first write: most connections of a large fleet are idle
 * (no subscription, nothing in flight), and an empty Map or Set costs about 200 bytes. Readers
 * use the `...View` getters, which never allocate; writers use the plain getters.
 */
export class Session {
  private _subscriptions: Map<string, SubscriptionRecord> | undefined;
  /** Entries not yet sent, in seq order (from `queueHead`). */
  private queue: DeliveryEntry[] = NO_QUEUE;
  private queueHead = 0;
  queuedBytes = 0;
  private _inflight: InflightTable | undefined;
  private _incomingQos2: Set<number> | undefined;
  /** Set when another node took the session over: no more store writes from this copy. */
  evicted = false;
  private nextPacketId = 1;
  private nextLocalSeq = 1;

  constructor(
    public record: SessionRecord,
    /** True when the session outlives the connection (expiry > 0 or 3.1.1 clean session 0). */
    public persistent: boolean,
    public epoch: number,
  ) {}

  get clientId(): string {
    return this.record.clientId;
  }

  /** Subscriptions by filter (creates the map). */
  get subscriptions(): Map<string, SubscriptionRecord> {
    return (this._subscriptions ??= new Map());
  }

  get subscriptionsView(): ReadonlyMap<string, SubscriptionRecord> {
    return this._subscriptions ?? NO_SUBSCRIPTIONS;
  }

  /** Entries sent and not yet acknowledged, by packet identifier, in send order (creates the table). */
  get inflight(): InflightTable {
    return (this._inflight ??= new InflightTable());
  }

  get inflightView(): InflightView {
    return this._inflight ?? NO_INFLIGHT;
  }

  get inflightCount(): number {
    return this._inflight === undefined ? 0 : this._inflight.size;
  }

  /** Inbound QoS 2 packet ids: PUBREC sent, PUBREL not yet received [MQTT-4.3.3-9] (creates the set). */
  get incomingQos2(): Set<number> {
    return (this._incomingQos2 ??= new Set());
  }

  get incomingQos2View(): ReadonlySet<number> {
    return this._incomingQos2 ?? NO_IDS;
  }

  get queueLength(): number {
    return this.queue.length - this.queueHead;
  }

  /** Seq for entries of non-persistent sessions (persistent ones get theirs from the store). */
  localSeq(): number {
    return this.nextLocalSeq++;
  }

  /** Restores queued entries and in-flight entries from a stored snapshot, in seq order. */
  restore(entries: DeliveryEntry[]): void {
    for (const e of entries) {
      // The snapshot's entries are the caller's own copies (Store hands out copies): changed in place.
      if (e.phase === 'queued' || e.packetId === undefined) {
        e.phase = 'queued';
        e.packetId = undefined;
        this.pushQueued(e);
      }
      else this.inflight.set(e.packetId, e);
      if (e.packetId !== undefined && e.packetId >= this.nextPacketId) this.nextPacketId = (e.packetId % 65535) + 1;
    }
  }

  /** True when one more entry of `bytes` fits in the queue limits. */
  canQueue(bytes: number, limits: QueueLimits): boolean {
    if (limits.maxQueuedMessages > 0 && this.queueLength >= limits.maxQueuedMessages) return false;
    if (limits.maxQueuedBytes > 0 && this.queuedBytes + bytes > limits.maxQueuedBytes) return false;
    return true;
  }

  pushQueued(entry: DeliveryEntry): void {
    if (this.queue === NO_QUEUE) this.queue = [];
    this.queue.push(entry);
    this.queuedBytes += entry.message.payload.length;
  }

  /** True when `pred` holds for some queued entry (in queue order, stops at the first). */
  someQueued(pred: (e: DeliveryEntry) => boolean): boolean {
    for (let i = this.queueHead; i < this.queue.length; i++) if (pred(this.queue[i]!)) return true;
    return false;
  }

  peekQueued(): DeliveryEntry | undefined {
    return this.queueHead < this.queue.length ? this.queue[this.queueHead] : undefined;
  }

  shiftQueued(): DeliveryEntry | undefined {
    if (this.queueHead >= this.queue.length) return undefined;
    const e = this.queue[this.queueHead]!;
    this.queue[this.queueHead] = undefined as unknown as DeliveryEntry;
    this.queueHead++;
    this.queuedBytes -= e.message.payload.length;
    // Compact the array once the consumed head dominates, so shifting stays O(1) amortized.
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return e;
  }

  /** Removes every queued entry (a clean start or a session end). */
  clearQueue(): DeliveryEntry[] {
    const rest = this.queue.slice(this.queueHead);
    this.queue = NO_QUEUE;
    this.queueHead = 0;
    this.queuedBytes = 0;
    return rest;
  }

  /**
   * A packet identifier not in use by an in-flight outbound message [MQTT-2.2.1-3], or undefined
   * when all 65535 are taken.
   */
  allocatePacketId(): number | undefined {
    const inflight = this.inflight;
    if (inflight.size >= 65535) return undefined;
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      // Not in use [MQTT-2.2.1-3], and free in the table's layout (see inflight.ts).
      if (inflight.freeFor(id)) return id;
    }
  }
}
