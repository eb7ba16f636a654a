/**
 * How records are laid out in Redis values (see README.md for the key layout).
 *
 * - Message blob: `[u32 BE header length][header JSON][payload bytes]`. The header is the message
 *   without its payload, as JSON with Buffers as `{"$b":"<base64>"}` (the embedded store's JSON
 *   convention); the payload is stored raw, so large payloads cost no base64.
 * - Session record, subscription: the same JSON convention.
 * - Queue entry: `phase|packetId|qos|retain|subscriptionIds|messageId`, a flat string the Lua
 *   scripts can change (phase, packet id) with one `string.match`, without a JSON library.
 *   phase is `q`, `s` or `r`; packetId is empty when none; subscriptionIds is `-` when absent,
 *   empty for an empty list, else comma-separated; messageId is last because it may contain `|`.
 */
import { Buffer } from 'node:buffer';
import { fromJsonValue, toJsonValue } from '../embedded/codec.js';
import { StoreError, type DeliveryEntry, type NewDelivery, type QoS, type SessionRecord, type StoredMessage, type SubscriptionRecord } from '../types.js';

export function encodeMessage(m: StoredMessage): Buffer {
  const { payload, ...header } = m;
  const json = Buffer.from(JSON.stringify(toJsonValue(header)), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.length + payload.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).copy(out, 4 + json.length);
  return out;
}

export function decodeMessage(blob: Buffer): StoredMessage {
  if (blob.length < 4) throw new StoreError('corrupt message blob in Redis (too short)');
  const n = blob.readUInt32BE(0);
  if (4 + n > blob.length) throw new StoreError('corrupt message blob in Redis (bad header length)');
  const header = fromJsonValue(JSON.parse(blob.toString('utf8', 4, 4 + n))) as Omit<StoredMessage, 'payload'>;
  // A copy, so a caller filling the payload cannot reach another object of the same reply.
  return { ...header, payload: Buffer.from(blob.subarray(4 + n)) };
}

export function encodeJson(value: SessionRecord | SubscriptionRecord): string {
  return JSON.stringify(toJsonValue(value));
}

export function decodeJson<T>(text: string | Buffer): T {
  return fromJsonValue(JSON.parse(text.toString())) as T;
}

/** The part of a new queue entry after `phase|packetId|`. */
export function entryTail(d: NewDelivery, messageId: string): string {
  const subs = d.subscriptionIds === undefined ? '-' : d.subscriptionIds.join(',');
  return `${d.qos}|${d.retain ? 1 : 0}|${subs}|${messageId}`;
}

export interface ParsedEntry {
  phase: DeliveryEntry['phase'];
  packetId?: number;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
  messageId: string;
}

const PHASES: Record<string, DeliveryEntry['phase']> = { q: 'queued', s: 'sent', r: 'released' };

export function parseEntry(text: string): ParsedEntry {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < 5; i++) {
    const bar = text.indexOf('|', start);
    if (bar < 0) throw new StoreError(`corrupt queue entry in Redis: ${JSON.stringify(text.slice(0, 80))}`);
    parts.push(text.slice(start, bar));
    start = bar + 1;
  }
  const [phase, packetId, qos, retain, subs] = parts as [string, string, string, string, string];
  const out: ParsedEntry = { phase: PHASES[phase] ?? 'queued', qos: Number(qos) as QoS, retain: retain === '1', messageId: text.slice(start) };
  if (packetId !== '') out.packetId = Number(packetId);
  if (subs !== '-') out.subscriptionIds = subs === '' ? [] : subs.split(',').map(Number);
  return out;
}
