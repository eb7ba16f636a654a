/**
 * Record framing and payload encoding shared by the log and snapshot files.
 *
 * Frame: `[u32 LE payload length][u32 LE crc32(payload)][payload]`.
 *
 * Payload: UTF-8 JSON. Why JSON rather than a hand-made binary layout: a handful of record kinds
 * with optional fields, native (fast) JSON.parse/stringify, a log that a ten-line script can dump
 * when something goes wrong, and new optional fields need no format version. The cost is base64
 * for binary fields (+33% on payload bytes), paid once per message since a message body is written
 * once however many queues hold it.
 *
 * Buffers are encoded as `{"$b": "<base64>"}`. To keep that marker unambiguous, every object key
 * starting with `$` (user property names can be anything) gets one more `$` on the way out and
 * loses it on the way in.
 */
import { Buffer } from 'node:buffer';
import { readSync } from 'node:fs';
import { StoreError } from '../types.js';
import { crc32 } from './crc32.js';

export const FRAME_HEADER_BYTES = 8;
/** Larger than any record Skein writes (MQTT caps a payload at 256 MiB; base64 adds a third). */
export const MAX_RECORD_BYTES = 0x20000000;

export function toJsonValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return { $b: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.map(toJsonValue);
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj)) {
    const item = obj[key];
    if (item !== undefined) out[key.charCodeAt(0) === 36 /* $ */ ? `$${key}` : key] = toJsonValue(item);
  }
  return out;
}

/** An object whose values are all primitives and whose keys do not start with `$`. */
function isFlat(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) return false;
  for (const key in value) {
    if (key.charCodeAt(0) === 36 /* $ */) return false;
    const item = (value as Record<string, unknown>)[key];
    if (item !== null && typeof item === 'object') return false;
  }
  return true;
}

export function fromJsonValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(fromJsonValue);
  const obj = value as Record<string, unknown>;
  const b = obj['$b'];
  if (typeof b === 'string') return Buffer.from(b, 'base64');
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj)) {
    out[key.startsWith('$$') ? key.slice(1) : key] = fromJsonValue(obj[key]);
  }
  return out;
}

/** Serializes a value into one framed record (throws `StoreError` when it is too large, before
 *  anything is applied or written). */
export function encodeFrame(value: unknown): Buffer {
  // The frequent small records (sent, complete, released, QoS 2 ids) hold only strings and
  // numbers under plain keys: they need no conversion copy.
  const json = JSON.stringify(isFlat(value) ? value : toJsonValue(value));
  const length = Buffer.byteLength(json);
  if (length > MAX_RECORD_BYTES) throw new StoreError(`store record of ${length} bytes exceeds the ${MAX_RECORD_BYTES} byte limit`);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  frame.write(json, FRAME_HEADER_BYTES, 'utf8');
  frame.writeUInt32LE(length, 0);
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_HEADER_BYTES)), 4);
  return frame;
}

export function decodePayload(payload: Buffer): unknown {
  return fromJsonValue(JSON.parse(payload.toString('utf8')));
}

export type Frame =
  | { kind: 'record'; payload: Buffer; start: number; end: number }
  | { kind: 'eof' }
  /** The file is unusable from `start` on (torn or corrupt record). */
  | { kind: 'bad'; start: number; reason: string };

const CHUNK_BYTES = 1 << 20;

/** Reads frames one after the other from an open file, with buffered reads. */
export class FrameReader {
  private buffer = Buffer.alloc(0);
  /** File offset of `buffer[0]`. */
  private bufferStart = 0;
  private position = 0;

  constructor(private readonly fd: number, private readonly size: number) {}

  next(): Frame {
    const start = this.position;
    if (start >= this.size) return { kind: 'eof' };
    if (this.size - start < FRAME_HEADER_BYTES) return { kind: 'bad', start, reason: 'torn record header' };
    const header = this.bytes(start, FRAME_HEADER_BYTES);
    const length = header.readUInt32LE(0);
    const crc = header.readUInt32LE(4);
    if (length === 0 || length > MAX_RECORD_BYTES) return { kind: 'bad', start, reason: `impossible record length ${length}` };
    if (start + FRAME_HEADER_BYTES + length > this.size) return { kind: 'bad', start, reason: 'torn record' };
    const payload = this.bytes(start + FRAME_HEADER_BYTES, length);
    if (crc32(payload) !== crc) return { kind: 'bad', start, reason: 'checksum mismatch' };
    this.position = start + FRAME_HEADER_BYTES + length;
    return { kind: 'record', payload, start, end: this.position };
  }

  private bytes(offset: number, length: number): Buffer {
    const from = offset - this.bufferStart;
    if (from < 0 || from + length > this.buffer.length) {
      this.fill(offset, length);
      return this.buffer.subarray(0, length);
    }
    return this.buffer.subarray(from, from + length);
  }

  private fill(offset: number, length: number): void {
    const buffer = Buffer.allocUnsafe(Math.min(Math.max(length, CHUNK_BYTES), this.size - offset));
    let filled = 0;
    while (filled < buffer.length) {
      const n = readSync(this.fd, buffer, filled, buffer.length - filled, offset + filled);
      if (n === 0) break;
      filled += n;
    }
    if (filled < length) throw new Error(`short read at offset ${offset}`);
    this.buffer = buffer.subarray(0, filled);
    this.bufferStart = offset;
  }
}
