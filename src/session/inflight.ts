/**
 * Outbound QoS 1/2 messages in flight, by packet identifier: the table behind `Session.inflight`.
 *
 * Why not a Map: every message in flight is added and removed once, and V8's Map re-allocates
 * its backing table every few additions and removals (it rehashes away deleted slots and shrinks
 * when it empties); in the QoS 1 latency benchmark that was about 12% of the garbage made per
 * message, and garbage collection is what sets the latency tail. Here the table is an array of
 * slots indexed by `packetId & mask`, allocated only when it grows:
 *   - the broker chooses the packet identifiers (`freeFor` tells whether an identifier can be
 *     used), so an identifier whose slot is taken by an older message still in flight is simply
 *     skipped: any identifier not in use will do [MQTT-2.2.1-3];
 *   - entries added with identifiers chosen elsewhere (a session restored from the store) grow
 *     the table until their slots differ;
 *   - the table stays at most half full, so a free identifier is always a few steps away.
 * Iteration is in seq order, which is the order the messages were sent (the queue is sent in seq
 * order), as resending in the original order requires [MQTT-4.6.0-1].
 */
import type { DeliveryEntry } from '../store/types.js';

/** What readers of a session's in-flight messages use (a Map's read-only shape). */
export interface InflightView {
  readonly size: number;
  get(packetId: number): DeliveryEntry | undefined;
  has(packetId: number): boolean;
  /** [packetId, entry] in seq order (a copy: the table may change while it is walked). */
  [Symbol.iterator](): IterableIterator<[number, DeliveryEntry]>;
}

const MIN_SLOTS = 16;

/** The table size for `n` entries at most half full: a power of two, at least MIN_SLOTS. */
function slotsFor(n: number): number {
  let size = MIN_SLOTS;
  while (size < 2 * n) size *= 2;
  return size;
}

export class InflightTable implements InflightView {
  private slots: Array<DeliveryEntry | undefined> = new Array<DeliveryEntry | undefined>(MIN_SLOTS).fill(undefined);
  private mask = MIN_SLOTS - 1;
  private count = 0;
  /** Most entries at once since the table last emptied: what the table is sized back to. */
  private peak = 0;

  get size(): number {
    return this.count;
  }

  get(packetId: number): DeliveryEntry | undefined {
    const e = this.slots[packetId & this.mask];
    return e !== undefined && e.packetId === packetId ? e : undefined;
  }

  has(packetId: number): boolean {
    return this.get(packetId) !== undefined;
  }

  /** True when `packetId` can be given to a new message: not in flight, and its slot is free. */
  freeFor(packetId: number): boolean {
    if (this.count * 2 >= this.slots.length) this.resize(this.slots.length * 2);
    return this.slots[packetId & this.mask] === undefined;
  }

  /** Adds or replaces the entry for `packetId`; `entry.packetId` must be `packetId`. */
  set(packetId: number, entry: DeliveryEntry): this {
    if (entry.packetId !== packetId) throw new Error(`in-flight entry with packet id ${entry.packetId} stored under ${packetId}`);
    for (;;) {
      const i = packetId & this.mask;
      const e = this.slots[i];
      if (e === undefined || e.packetId === packetId) {
        if (e === undefined && ++this.count > this.peak) this.peak = this.count;
        this.slots[i] = entry;
        if (this.count * 2 > this.slots.length) this.resize(this.slots.length * 2);
        return this;
      }
      this.resize(this.slots.length * 2); // another identifier in that slot: spread them out
    }
  }

  delete(packetId: number): boolean {
    const i = packetId & this.mask;
    const e = this.slots[i];
    if (e === undefined || e.packetId !== packetId) return false;
    this.slots[i] = undefined;
    if (--this.count === 0) {
      // A burst that grew the table does not keep it once everything is acknowledged; a table
      // that the bursts of this session fill over and over (a subscriber kept busy, which
      // empties its window every turn) keeps its size: shrinking it at each empty and growing
      // it again was 1.4% of the broker's CPU in fan-in QoS 1. So it shrinks to what the last
      // burst needed, and only when it is more than four times that.
      const fit = slotsFor(this.peak);
      this.peak = 0;
      if (this.slots.length > 4 * fit) this.resize(fit);
    }
    return true;
  }

  /** Slots in the table, for tests. */
  get capacity(): number {
    return this.slots.length;
  }

  *[Symbol.iterator](): IterableIterator<[number, DeliveryEntry]> {
    const list: DeliveryEntry[] = [];
    for (const e of this.slots) if (e !== undefined) list.push(e);
    list.sort((a, b) => a.seq - b.seq);
    for (const e of list) yield [e.packetId!, e];
  }

  /** Moves every entry into `n` slots (a power of two), doubling further until no two collide. */
  private resize(n: number): void {
    const old = this.slots;
    for (let size = n; ; size *= 2) {
      const slots = new Array<DeliveryEntry | undefined>(size).fill(undefined);
      const mask = size - 1;
      let ok = true;
      for (const e of old) {
        if (e === undefined) continue;
        const i = e.packetId! & mask;
        if (slots[i] !== undefined) {
          ok = false;
          break;
        }
        slots[i] = e;
      }
      if (ok) {
        this.slots = slots;
        this.mask = mask;
        return;
      }
    }
  }
}

/** The view of a session with nothing in flight (no table allocated). */
export const NO_INFLIGHT: InflightView = new InflightTable();
