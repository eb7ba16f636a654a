/**
 * The in-memory state core shared by `MemoryStore` and `EmbeddedStore`.
 *
 * Every write is split in two steps:
 * 1. `plan*` checks the epoch (throwing `StaleEpochError`), computes the result (new epoch, seqs)
 *    and returns a `Mutation`: a self-contained description of the change holding store-owned
 *    copies. Planning never changes state, so a refused write changes nothing.
 * 2. `apply` performs a mutation. It is deterministic and needs no validation, so a durable backend
 *    can log the mutation and replay it on open to rebuild exactly the same state.
 *
 * A plan returns `null` as mutation when the write would change nothing (unknown seq or packet id).
 */
import {
  StaleEpochError,
  type DeliveryEntry,
  type NewDelivery,
  type PublishCommit,
  type PublishCommitResult,
  type QoS,
  type SessionRecord,
  type SessionSnapshot,
  type StoredMessage,
  type SubscriptionRecord,
  type TakeSessionResult,
} from '../types.js';
import { copyEntry, deepCopy } from './clone.js';

/** A delivery as it lands in a session queue (the seq is fixed by the plan). */
export interface PlannedDelivery {
  clientId: string;
  seq: number;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
}

export type Mutation =
  | { t: 'take'; record: SessionRecord; epoch: number; clean: boolean }
  | { t: 'update'; record: SessionRecord }
  | { t: 'delete'; clientId: string }
  | { t: 'subscribe'; clientId: string; subs: SubscriptionRecord[] }
  | { t: 'unsubscribe'; clientId: string; filters: string[] }
  | {
      t: 'publish';
      topic: string;
      /** Absent when nothing keeps the body (no delivery landed and no retained `set`). */
      message?: StoredMessage;
      deliveries: PlannedDelivery[];
      retain?: 'set' | 'delete';
      incomingQos2?: { clientId: string; packetId: number };
    }
  | { t: 'sent'; clientId: string; seq: number; packetId: number }
  | { t: 'released'; clientId: string; packetId: number }
  | { t: 'complete'; clientId: string; packetId: number }
  | { t: 'drop'; clientId: string; seqs: number[] }
  /** `sent` / `complete` in order: pairs `seq, packetId`, seq 0 = complete (Store.updateDeliveries). */
  | { t: 'deliveries'; clientId: string; ops: number[] }
  | { t: 'qos2-add'; clientId: string; packetId: number }
  | { t: 'qos2-remove'; clientId: string; packetId: number };

export interface Planned<R> {
  mutation: Mutation | null;
  result: R;
}

/** Snapshot records: the whole state as a stream of small records. A message body shared by many
 *  queues (and the retained table) appears once, as `msg`, and is referenced by its index `m`. */
export type SnapshotRecord =
  | { t: 'meta'; epochCounter: number }
  | { t: 'msg'; i: number; message: StoredMessage }
  | {
      t: 'session';
      record: SessionRecord;
      epoch: number;
      nextSeq: number;
      subs: SubscriptionRecord[];
      incomingQos2: number[];
      entries: SnapshotEntry[];
    }
  /** More entries of the session just before (long queues are split so records stay small). */
  | { t: 'entries'; clientId: string; entries: SnapshotEntry[] }
  | { t: 'retained'; m: number };

export type SnapshotEntry = Omit<DeliveryEntry, 'message'> & { m: number };

const ENTRIES_PER_RECORD = 10_000;

/** Everything a `SessionState` holds is replaced, never changed in place (see `clone`). */
interface SessionState {
  record: SessionRecord;
  epoch: number;
  nextSeq: number;
  subs: Map<string, SubscriptionRecord>;
  /** Keyed by seq; insertion order is seq order because seqs only grow. */
  entries: Map<number, DeliveryEntry>;
  /** packetId -> seq of the in-flight entry using it. */
  byPacketId: Map<number, number>;
  incomingQos2: Set<number>;
}

function newSession(record: SessionRecord, epoch: number, nextSeq: number): SessionState {
  return {
    record,
    epoch,
    nextSeq,
    subs: new Map(),
    entries: new Map(),
    byPacketId: new Map(),
    incomingQos2: new Set(),
  };
}

/** `sent`: the entry `seq` (if still there) is in flight under `packetId`. */
function applySent(s: SessionState, seq: number, packetId: number): void {
  const entry = s.entries.get(seq);
  if (!entry) return;
  if (entry.packetId !== undefined && s.byPacketId.get(entry.packetId) === entry.seq) {
    s.byPacketId.delete(entry.packetId);
  }
  // A new object (entries are replaced, not changed), built field by field: a spread was the
  // largest single cost of a backlog drain.
  const sent: DeliveryEntry = { seq: entry.seq, message: entry.message, qos: entry.qos, retain: entry.retain, phase: 'sent', packetId };
  if (entry.subscriptionIds !== undefined) sent.subscriptionIds = entry.subscriptionIds;
  s.entries.set(entry.seq, sent);
  s.byPacketId.set(packetId, entry.seq);
}

/** `complete`: the entry in flight under `packetId` (if any) is gone. */
function applyComplete(s: SessionState, packetId: number): void {
  const seq = s.byPacketId.get(packetId);
  if (seq === undefined) return;
  s.byPacketId.delete(packetId);
  s.entries.delete(seq);
}

export class StoreState {
  /** Epochs come from one store-wide counter, so an epoch is never reused, not even after a
   *  session is deleted and created again (a node holding the old epoch stays fenced). */
  private epochCounter = 0;
  private readonly sessions = new Map<string, SessionState>();
  private readonly retained = new Map<string, StoredMessage>();

  clear(): void {
    this.epochCounter = 0;
    this.sessions.clear();
    this.retained.clear();
  }

  // ---- reads (copies) ----

  getSession(clientId: string): SessionSnapshot | undefined {
    const s = this.sessions.get(clientId);
    return s ? this.snapshotOf(s) : undefined;
  }

  listSessions(): Array<{ record: SessionRecord; epoch: number }> {
    return [...this.sessions.values()].map((s) => ({ record: deepCopy(s.record), epoch: s.epoch }));
  }

  listSubscriptions(): Array<{ clientId: string; subscription: SubscriptionRecord }> {
    const out: Array<{ clientId: string; subscription: SubscriptionRecord }> = [];
    for (const [clientId, s] of this.sessions) {
      for (const sub of s.subs.values()) out.push({ clientId, subscription: deepCopy(sub) });
    }
    return out;
  }

  listRetained(): StoredMessage[] {
    return [...this.retained.values()].map((m) => deepCopy(m));
  }

  private snapshotOf(s: SessionState): SessionSnapshot {
    return {
      record: deepCopy(s.record),
      epoch: s.epoch,
      subscriptions: [...s.subs.values()].map((sub) => deepCopy(sub)),
      deliveries: Array.from(s.entries.values(), copyEntry),
      incomingQos2: [...s.incomingQos2],
    };
  }

  // ---- plans ----

  private current(clientId: string, epoch: number): SessionState {
    const s = this.sessions.get(clientId);
    if (!s || s.epoch !== epoch) throw new StaleEpochError(clientId, epoch, s?.epoch);
    return s;
  }

  planTake(record: SessionRecord, cleanStart: boolean): Planned<TakeSessionResult> {
    const existing = this.sessions.get(record.clientId);
    const epoch = this.epochCounter + 1;
    const result: TakeSessionResult = { epoch, existed: existing !== undefined };
    if (existing && !cleanStart) result.previous = this.snapshotOf(existing);
    return { mutation: { t: 'take', record: deepCopy(record), epoch, clean: cleanStart }, result };
  }

  planUpdate(record: SessionRecord, epoch: number): Mutation {
    this.current(record.clientId, epoch);
    return { t: 'update', record: deepCopy(record) };
  }

  planDelete(clientId: string, epoch?: number): Mutation | null {
    if (!this.sessions.has(clientId)) return null;
    if (epoch !== undefined) this.current(clientId, epoch);
    return { t: 'delete', clientId };
  }

  planSubscribe(clientId: string, epoch: number, subs: SubscriptionRecord[]): Mutation {
    this.current(clientId, epoch);
    return { t: 'subscribe', clientId, subs: deepCopy(subs) };
  }

  planUnsubscribe(clientId: string, epoch: number, filters: string[]): Mutation {
    this.current(clientId, epoch);
    return { t: 'unsubscribe', clientId, filters: [...filters] };
  }

  planPublish(commit: PublishCommit): Planned<PublishCommitResult> {
    const q2 = commit.incomingQos2;
    if (q2) this.current(q2.clientId, q2.epoch);
    const nextSeqs = new Map<string, number>();
    const deliveries: PlannedDelivery[] = [];
    const owners: Array<string | undefined> = [];
    const max = commit.maxQueued ?? 0;
    const seqs = commit.deliveries.map((d: NewDelivery) => {
      const s = this.sessions.get(d.clientId);
      owners.push(s && s.record.disconnectedAt === undefined ? s.record.nodeId : undefined);
      if (!s) return -1;
      const seq = nextSeqs.get(d.clientId) ?? s.nextSeq;
      // Entries already held plus those this commit adds before this one.
      if (max > 0 && s.entries.size + (seq - s.nextSeq) >= max) return -2;
      nextSeqs.set(d.clientId, seq + 1);
      deliveries.push(
        deepCopy({ clientId: d.clientId, seq, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds }),
      );
      return seq;
    });
    const result = { seqs, owners };
    if (deliveries.length === 0 && !commit.retain && !q2) return { mutation: null, result };
    const mutation: Mutation = { t: 'publish', topic: commit.message.topic, deliveries };
    if (deliveries.length > 0 || commit.retain === 'set') mutation.message = deepCopy(commit.message);
    if (commit.retain) mutation.retain = commit.retain;
    if (q2) mutation.incomingQos2 = { clientId: q2.clientId, packetId: q2.packetId };
    return { mutation, result };
  }

  planSent(clientId: string, epoch: number, seq: number, packetId: number): Mutation | null {
    const s = this.current(clientId, epoch);
    return s.entries.has(seq) ? { t: 'sent', clientId, seq, packetId } : null;
  }

  planReleased(clientId: string, epoch: number, packetId: number): Mutation | null {
    const s = this.current(clientId, epoch);
    return s.byPacketId.has(packetId) ? { t: 'released', clientId, packetId } : null;
  }

  planComplete(clientId: string, epoch: number, packetId: number): Mutation | null {
    const s = this.current(clientId, epoch);
    return s.byPacketId.has(packetId) ? { t: 'complete', clientId, packetId } : null;
  }

  planDrop(clientId: string, epoch: number, seqs: number[]): Mutation | null {
    const s = this.current(clientId, epoch);
    const present = seqs.filter((seq) => s.entries.has(seq));
    return present.length > 0 ? { t: 'drop', clientId, seqs: present } : null;
  }

  planDeliveries(clientId: string, epoch: number, ops: readonly number[]): Mutation | null {
    this.current(clientId, epoch);
    return ops.length >= 2 ? { t: 'deliveries', clientId, ops: ops.slice(0, ops.length & ~1) } : null;
  }

  planQos2Add(clientId: string, epoch: number, packetId: number): Mutation | null {
    const s = this.current(clientId, epoch);
    return s.incomingQos2.has(packetId) ? null : { t: 'qos2-add', clientId, packetId };
  }

  planQos2Remove(clientId: string, epoch: number, packetId: number): Mutation | null {
    const s = this.current(clientId, epoch);
    return s.incomingQos2.has(packetId) ? { t: 'qos2-remove', clientId, packetId } : null;
  }

  // ---- apply ----

  /** Performs a planned (or replayed) mutation. Takes ownership of the objects in it. Tolerates
   *  sessions that no longer exist, so replaying a log never fails halfway. */
  apply(m: Mutation): void {
    switch (m.t) {
      case 'take': {
        const existing = this.sessions.get(m.record.clientId);
        if (existing && !m.clean) {
          existing.record = m.record;
          existing.epoch = m.epoch;
        } else {
          this.sessions.set(m.record.clientId, newSession(m.record, m.epoch, existing?.nextSeq ?? 1));
        }
        this.epochCounter = Math.max(this.epochCounter, m.epoch);
        return;
      }
      case 'update': {
        const s = this.sessions.get(m.record.clientId);
        if (s) s.record = m.record;
        return;
      }
      case 'delete':
        this.sessions.delete(m.clientId);
        return;
      case 'subscribe': {
        const s = this.sessions.get(m.clientId);
        if (s) for (const sub of m.subs) s.subs.set(sub.filter, sub);
        return;
      }
      case 'unsubscribe': {
        const s = this.sessions.get(m.clientId);
        if (s) for (const filter of m.filters) s.subs.delete(filter);
        return;
      }
      case 'publish':
        this.applyPublish(m);
        return;
      case 'sent': {
        const s = this.sessions.get(m.clientId);
        if (s) applySent(s, m.seq, m.packetId);
        return;
      }
      case 'deliveries': {
        const s = this.sessions.get(m.clientId);
        if (!s) return;
        const ops = m.ops;
        for (let i = 0; i + 1 < ops.length; i += 2) {
          if (ops[i] === 0) applyComplete(s, ops[i + 1]!);
          else applySent(s, ops[i]!, ops[i + 1]!);
        }
        return;
      }
      case 'released': {
        const s = this.sessions.get(m.clientId);
        const seq = s?.byPacketId.get(m.packetId);
        const entry = seq === undefined ? undefined : s?.entries.get(seq);
        if (entry) s?.entries.set(entry.seq, { ...entry, phase: 'released' });
        return;
      }
      case 'complete': {
        const s = this.sessions.get(m.clientId);
        if (s) applyComplete(s, m.packetId);
        return;
      }
      case 'drop': {
        const s = this.sessions.get(m.clientId);
        if (!s) return;
        for (const seq of m.seqs) {
          const entry = s.entries.get(seq);
          if (!entry) continue;
          if (entry.packetId !== undefined && s.byPacketId.get(entry.packetId) === seq) {
            s.byPacketId.delete(entry.packetId);
          }
          s.entries.delete(seq);
        }
        return;
      }
      case 'qos2-add':
        this.sessions.get(m.clientId)?.incomingQos2.add(m.packetId);
        return;
      case 'qos2-remove':
        this.sessions.get(m.clientId)?.incomingQos2.delete(m.packetId);
        return;
    }
  }

  private applyPublish(m: Extract<Mutation, { t: 'publish' }>): void {
    if (m.retain === 'set' && m.message) this.retained.set(m.topic, m.message);
    else if (m.retain === 'delete') this.retained.delete(m.topic);
    for (const d of m.deliveries) {
      const s = this.sessions.get(d.clientId);
      if (!s || !m.message) continue;
      const entry: DeliveryEntry = { seq: d.seq, message: m.message, qos: d.qos, retain: d.retain, phase: 'queued' };
      if (d.subscriptionIds) entry.subscriptionIds = d.subscriptionIds;
      s.entries.set(d.seq, entry);
      s.nextSeq = Math.max(s.nextSeq, d.seq + 1);
    }
    if (m.incomingQos2) this.sessions.get(m.incomingQos2.clientId)?.incomingQos2.add(m.incomingQos2.packetId);
  }

  // ---- whole-state export / import (snapshots of durable backends) ----

  /**
   * The whole state as records. The records share internal objects: serialize each at once, and
   * export a `clone()` when the export is spread over several turns while the state keeps changing.
   */
  *exportRecords(): Generator<SnapshotRecord> {
    yield { t: 'meta', epochCounter: this.epochCounter };
    const index = new Map<StoredMessage, number>();
    for (const s of this.sessions.values()) {
      let entries: SnapshotEntry[] = [];
      let first = true;
      const flush = (): SnapshotRecord => {
        const record: SnapshotRecord = first
          ? {
              t: 'session',
              record: s.record,
              epoch: s.epoch,
              nextSeq: s.nextSeq,
              subs: [...s.subs.values()],
              incomingQos2: [...s.incomingQos2],
              entries,
            }
          : { t: 'entries', clientId: s.record.clientId, entries };
        first = false;
        entries = [];
        return record;
      };
      for (const e of s.entries.values()) {
        let m = index.get(e.message);
        if (m === undefined) {
          m = index.size;
          index.set(e.message, m);
          yield { t: 'msg', i: m, message: e.message };
        }
        const entry: SnapshotEntry = { seq: e.seq, m, qos: e.qos, retain: e.retain, phase: e.phase };
        if (e.subscriptionIds) entry.subscriptionIds = e.subscriptionIds;
        if (e.packetId !== undefined) entry.packetId = e.packetId;
        entries.push(entry);
        if (entries.length === ENTRIES_PER_RECORD) yield flush();
      }
      if (first || entries.length > 0) yield flush();
    }
    for (const message of this.retained.values()) {
      let m = index.get(message);
      if (m === undefined) {
        m = index.size;
        index.set(message, m);
        yield { t: 'msg', i: m, message };
      }
      yield { t: 'retained', m };
    }
  }

  /**
   * A point-in-time copy that later mutations do not affect, cheap enough to take between two
   * batches: only the containers are copied. Messages, records, subscriptions and queue entries
   * are shared, which is safe because the state never changes them in place, it replaces them.
   */
  clone(): StoreState {
    const copy = new StoreState();
    copy.epochCounter = this.epochCounter;
    for (const [clientId, s] of this.sessions) {
      copy.sessions.set(clientId, {
        record: s.record,
        epoch: s.epoch,
        nextSeq: s.nextSeq,
        subs: new Map(s.subs),
        entries: new Map(s.entries),
        byPacketId: new Map(s.byPacketId),
        incomingQos2: new Set(s.incomingQos2),
      });
    }
    for (const [topic, m] of this.retained) copy.retained.set(topic, m);
    return copy;
  }

  /** Loads one exported record (into a cleared state); `messages` maps indexes while importing. */
  importRecord(r: SnapshotRecord, messages: Map<number, StoredMessage>): void {
    const message = (i: number): StoredMessage => {
      const found = messages.get(i);
      if (!found) throw new Error(`snapshot references unknown message ${i}`);
      return found;
    };
    switch (r.t) {
      case 'meta':
        this.epochCounter = Math.max(this.epochCounter, r.epochCounter);
        return;
      case 'msg':
        messages.set(r.i, r.message);
        return;
      case 'session':
      case 'entries': {
        let s = this.sessions.get(r.t === 'session' ? r.record.clientId : r.clientId);
        if (r.t === 'session') {
          s = newSession(r.record, r.epoch, r.nextSeq);
          for (const sub of r.subs) s.subs.set(sub.filter, sub);
          for (const id of r.incomingQos2) s.incomingQos2.add(id);
          this.sessions.set(r.record.clientId, s);
          this.epochCounter = Math.max(this.epochCounter, r.epoch);
        }
        if (!s) throw new Error(`snapshot has entries for unknown session ${r.t === 'entries' ? r.clientId : ''}`);
        for (const { m, ...rest } of r.entries) {
          const entry: DeliveryEntry = { ...rest, message: message(m) };
          s.entries.set(entry.seq, entry);
          if (entry.packetId !== undefined) s.byPacketId.set(entry.packetId, entry.seq);
        }
        return;
      }
      case 'retained': {
        const m = message(r.m);
        this.retained.set(m.topic, m);
        return;
      }
    }
  }

  /** Rough size in bytes of the state once serialized (used to decide when to compact a log). */
  estimateBytes(): number {
    const seen = new Set<StoredMessage>();
    let bytes = 64;
    const messageBytes = (m: StoredMessage): number => {
      if (seen.has(m)) return 0;
      seen.add(m);
      const props = m.properties ? JSON.stringify(m.properties).length + (m.properties.correlationData?.length ?? 0) : 0;
      return 160 + m.id.length + m.topic.length * 2 + Math.ceil(m.payload.length * 4 / 3) + props;
    };
    for (const s of this.sessions.values()) {
      bytes += 200 + s.record.clientId.length + (s.record.will ? 200 + s.record.will.payload.length * 2 : 0);
      for (const sub of s.subs.values()) bytes += 100 + sub.filter.length;
      for (const e of s.entries.values()) bytes += 80 + messageBytes(e.message);
      bytes += s.incomingQos2.size * 8;
    }
    for (const m of this.retained.values()) bytes += 20 + messageBytes(m);
    return bytes;
  }
}
