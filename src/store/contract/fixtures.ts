/** Builders and helpers for the store contract suite (interface only, no backend knowledge). */
import { Buffer } from 'node:buffer';
import assert from 'node:assert/strict';
import {
  StaleEpochError,
  type QoS,
  type SessionRecord,
  type SessionSnapshot,
  type Store,
  type StoredMessage,
  type SubscriptionRecord,
} from '../types.js';

export function record(clientId: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return { clientId, protocolVersion: 5, expiryInterval: 3600, nodeId: 'node-a', ...extra };
}

let messageCounter = 0;

export function message(topic: string, payload: string | Buffer = 'hello', extra: Partial<StoredMessage> = {}): StoredMessage {
  messageCounter += 1;
  return {
    id: `node-a-${messageCounter}`,
    topic,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    qos: 1,
    retain: false,
    createdAt: 1_700_000_000_000 + messageCounter,
    ...extra,
  };
}

export function sub(filter: string, qos: QoS = 1, extra: Partial<SubscriptionRecord> = {}): SubscriptionRecord {
  return { filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...extra };
}

/** Every byte value, then a few invalid UTF-8 sequences. */
export function binaryPayload(): Buffer {
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  return Buffer.concat([all, Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc, 0x00])]);
}

/** Deterministic pseudo-random bytes. */
export function noise(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A message with every property set, binary correlation data and multi-valued user properties
 *  (including keys that look like serialization markers). */
export function richMessage(topic: string, payload: Buffer = binaryPayload()): StoredMessage {
  return message(topic, payload, {
    qos: 2,
    retain: true,
    expiresAt: 1_800_000_000_000,
    properties: {
      payloadFormatIndicator: false,
      contentType: 'application/octet-stream',
      responseTopic: 'reply/ünïcødé/🚀',
      correlationData: Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]),
      userProperties: {
        single: 'value',
        multi: ['a', 'b', 'a'],
        empty: '',
        emptyList: [],
        'ключ': 'значение',
        $b: 'not a buffer',
        $$x: 'dollars',
        type: 'Buffer',
        data: ['1', '2'],
      },
    },
  });
}

export function richRecord(clientId: string): SessionRecord {
  return record(clientId, {
    protocolVersion: 5,
    expiryInterval: 0xffffffff,
    username: 'user-ü',
    will: {
      topic: `will/${clientId}`,
      payload: binaryPayload(),
      qos: 1,
      retain: true,
      delayInterval: 30,
      properties: {
        messageExpiryInterval: 600,
        contentType: 'text/plain',
        correlationData: Buffer.from([9, 8, 7]),
        userProperties: { k: ['v1', 'v2'] },
      },
    },
  });
}

/** Asserts that a promise rejects with a `StaleEpochError` carrying the given fields. */
export async function assertStale(
  promise: Promise<unknown>,
  clientId: string,
  epoch: number,
  current: number | undefined,
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof StaleEpochError, `expected StaleEpochError, got ${String(err)}`);
    assert.equal(err.code, 'SKEIN_STALE_EPOCH');
    assert.equal(err.clientId, clientId);
    assert.equal(err.epoch, epoch);
    assert.equal(err.current, current);
    return true;
  });
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function normalizeSnapshot(s: SessionSnapshot): SessionSnapshot {
  return {
    ...s,
    subscriptions: [...s.subscriptions].sort((a, b) => byString(a.filter, b.filter)),
    incomingQos2: [...s.incomingQos2].sort((a, b) => a - b),
  };
}

export async function snapshotOf(store: Store, clientId: string): Promise<SessionSnapshot | undefined> {
  const s = await store.getSession(clientId);
  return s && normalizeSnapshot(s);
}

/** Everything observable through the interface, in a canonical order (for equality checks). */
export async function dump(store: Store): Promise<{
  sessions: Array<{ record: SessionRecord; epoch: number }>;
  snapshots: SessionSnapshot[];
  subscriptions: Array<{ clientId: string; subscription: SubscriptionRecord }>;
  retained: StoredMessage[];
}> {
  const sessions = (await store.listSessions()).sort((a, b) => byString(a.record.clientId, b.record.clientId));
  const snapshots: SessionSnapshot[] = [];
  for (const s of sessions) {
    const snap = await snapshotOf(store, s.record.clientId);
    assert.ok(snap, `listed session ${s.record.clientId} has no snapshot`);
    snapshots.push(snap);
  }
  const subscriptions = (await store.listSubscriptions()).sort(
    (a, b) => byString(a.clientId, b.clientId) || byString(a.subscription.filter, b.subscription.filter),
  );
  const retained = (await store.listRetained()).sort((a, b) => byString(a.topic, b.topic));
  return { sessions, snapshots, subscriptions, retained };
}

export interface Populated {
  epochs: Record<string, number>;
  /** Every message id a session's queue holds, in seq order. */
  queued: Record<string, string[]>;
}

/**
 * Builds a state that exercises every kind of record: several sessions (one taken over twice, one
 * with a will), subscriptions, deliveries in every phase with packet ids, inbound QoS 2 ids,
 * retained messages (one replaced, one deleted), a deleted session and a binary message shared by
 * several queues and the retained table.
 */
export async function populate(store: Store): Promise<Populated> {
  const a1 = await store.takeSession(record('alpha'), false);
  await store.addSubscriptions('alpha', a1.epoch, [sub('sensors/+/temp', 2), sub('$share/g/jobs/#', 1, { subscriptionId: 7 })]);
  const a2 = await store.takeSession(record('alpha', { nodeId: 'node-b' }), false);
  const beta = await store.takeSession(richRecord('beta'), true);
  await store.addSubscriptions('beta', beta.epoch, [sub('#', 0, { noLocal: true, retainAsPublished: true, retainHandling: 2 })]);
  const gamma = await store.takeSession(record('gamma', { protocolVersion: 4 }), true);
  const doomed = await store.takeSession(record('doomed'), true);

  const shared = richMessage('sensors/1/temp', noise(3000, 42));
  const r1 = await store.commitPublish({
    message: shared,
    deliveries: [
      { clientId: 'alpha', qos: 2, retain: true, subscriptionIds: [7, 9] },
      { clientId: 'beta', qos: 0, retain: false },
      { clientId: 'doomed', qos: 1, retain: false },
    ],
    retain: 'set',
  });
  const ids: Record<string, string[]> = { alpha: [shared.id], gamma: [] };
  const later: StoredMessage[] = [];
  for (let i = 0; i < 6; i++) {
    const m = message('sensors/2/temp', i % 2 ? Buffer.alloc(0) : `reading ${i}`, { qos: 2 });
    later.push(m);
    await store.commitPublish({ message: m, deliveries: [{ clientId: 'alpha', qos: 2, retain: false }, { clientId: 'gamma', qos: 1, retain: false }] });
    ids.alpha!.push(m.id);
    ids.gamma!.push(m.id);
  }
  const alphaSeqs = (await store.getSession('alpha'))!.deliveries.map((d) => d.seq);
  // alpha: [shared sent+released, later0 sent, later1 sent then re-sent, later2 completed, later3 dropped, later4, later5 queued]
  await store.markSent('alpha', a2.epoch, alphaSeqs[0]!, 1);
  await store.markReleased('alpha', a2.epoch, 1);
  await store.markSent('alpha', a2.epoch, alphaSeqs[1]!, 2);
  await store.markSent('alpha', a2.epoch, alphaSeqs[2]!, 3);
  // The rest as one updateDeliveries: later1 re-sent under 30, later2 sent then completed.
  await store.updateDeliveries('alpha', a2.epoch, [alphaSeqs[2]!, 30, alphaSeqs[3]!, 4, 0, 4]);
  await store.dropDeliveries('alpha', a2.epoch, [alphaSeqs[4]!]);
  ids.alpha = ids.alpha!.filter((id) => id !== later[2]!.id && id !== later[3]!.id);
  await store.addIncomingQos2('alpha', a2.epoch, 11);
  await store.addIncomingQos2('alpha', a2.epoch, 12);
  await store.addIncomingQos2('alpha', a2.epoch, 13);
  await store.removeIncomingQos2('alpha', a2.epoch, 12);
  await store.commitPublish({
    message: message('cmd/gamma', 'qos2 in', { qos: 2 }),
    deliveries: [{ clientId: 'beta', qos: 0, retain: false }],
    incomingQos2: { clientId: 'gamma', epoch: gamma.epoch, packetId: 65535 },
  });
  await store.commitPublish({ message: message('status/old', 'gone soon', { retain: true }), deliveries: [], retain: 'set' });
  await store.commitPublish({ message: message('status/old', '', { retain: true }), deliveries: [], retain: 'delete' });
  await store.commitPublish({ message: message('status/kept', 'v1', { retain: true }), deliveries: [], retain: 'set' });
  await store.commitPublish({ message: message('status/kept', 'v2', { retain: true }), deliveries: [], retain: 'set' });
  await store.updateSession(record('gamma', { protocolVersion: 4, nodeId: undefined, disconnectedAt: 1_700_000_123_456 }), gamma.epoch);
  await store.removeSubscriptions('beta', beta.epoch, ['no/such/filter']);
  await store.deleteSession('doomed', doomed.epoch);
  assert.equal(r1.seqs.length, 3);
  const betaIds = (await store.getSession('beta'))!.deliveries.map((d) => d.message.id);
  return {
    epochs: { alpha: a2.epoch, beta: beta.epoch, gamma: gamma.epoch },
    queued: { alpha: ids.alpha!, beta: betaIds, gamma: ids.gamma! },
  };
}
