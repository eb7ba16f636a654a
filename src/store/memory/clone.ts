/**
 * Deep copy for store records. The store never keeps a caller's object and never hands out its
 * own, so every value crossing the `Store` boundary goes through here.
 *
 * - Buffers (and other Uint8Arrays) are copied byte for byte into new Buffers.
 * - Keys whose value is `undefined` are dropped, so `{ nodeId: undefined }` and `{}` are stored the
 *   same way. Durable backends serialize records (JSON has no `undefined`), and dropping the keys
 *   here keeps every backend returning identical objects.
 */
import { Buffer } from 'node:buffer';
import type { DeliveryEntry, MessageProperties, StoredMessage } from '../types.js';

export function deepCopy<T>(value: T): T {
  return copy(value) as T;
}

/**
 * `deepCopy` of a queue entry, field by field: a resumed session's snapshot copies every queued
 * entry, and the generic walk (Object.entries per object) was 12% of a 10,000-message backlog
 * drain. Same result as `deepCopy(entry)` (checked by clone.test.ts).
 */
export function copyEntry(e: DeliveryEntry): DeliveryEntry {
  const out: DeliveryEntry = { seq: e.seq, message: copyMessage(e.message), qos: e.qos, retain: e.retain, phase: e.phase };
  if (e.subscriptionIds !== undefined) out.subscriptionIds = e.subscriptionIds.slice();
  if (e.packetId !== undefined) out.packetId = e.packetId;
  return out;
}

/** `deepCopy` of a message, field by field (see `copyEntry`). */
export function copyMessage(m: StoredMessage): StoredMessage {
  const out: StoredMessage = { id: m.id, topic: m.topic, payload: Buffer.from(m.payload), qos: m.qos, retain: m.retain, createdAt: m.createdAt };
  if (m.properties !== undefined) out.properties = copy(m.properties) as MessageProperties;
  if (m.expiresAt !== undefined) out.expiresAt = m.expiresAt;
  return out;
}

function copy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(copy);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) out[key] = copy(item);
  }
  return out;
}
