/**
 * Snapshot files: the whole state as framed records, written by compaction.
 *
 * `{t:'snapshot', v:1, gen}` first, then the `SnapshotRecord`s of `StoreState.exportRecords`, then
 * `{t:'end', records:n}`. A snapshot without its end record, or with any bad frame, is invalid.
 */
import { Buffer } from 'node:buffer';
import { closeSync, fstatSync, openSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { StoredMessage } from '../types.js';
import type { SnapshotRecord, StoreState } from '../memory/state.js';
import { decodePayload, encodeFrame, FrameReader } from './codec.js';

export const FORMAT_VERSION = 1;
const CHUNK_BYTES = 1 << 20;

/**
 * Streams the state into `handle` in ~1 MiB writes. `state` must not change meanwhile: pass a
 * `clone()`. Each write yields to the event loop, so the broker keeps running during compaction.
 */
export async function writeSnapshotTo(handle: FileHandle, state: StoreState, gen: number): Promise<number> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let total = 0;
  const flush = async (): Promise<void> => {
    const chunk = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await writeFully(handle, chunk);
    total += chunk.length;
  };
  const push = (frame: Buffer): void => {
    pending.push(frame);
    pendingBytes += frame.length;
  };
  push(encodeFrame({ t: 'snapshot', v: FORMAT_VERSION, gen }));
  let records = 0;
  for (const record of state.exportRecords()) {
    push(encodeFrame(record));
    records += 1;
    if (pendingBytes >= CHUNK_BYTES) await flush();
  }
  push(encodeFrame({ t: 'end', records }));
  await flush();
  return total;
}

/** Writes all of `data` at the handle's position (append mode: at the end). */
export async function writeFully(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

/**
 * Loads a snapshot into a cleared `state`. Throws (leaving `state` partly loaded: clear it) when
 * the file is incomplete or corrupt.
 */
export function loadSnapshot(path: string, gen: number, state: StoreState): void {
  const fd = openSync(path, 'r');
  try {
    const reader = new FrameReader(fd, fstatSync(fd).size);
    const read = (): Record<string, unknown> | undefined => {
      const frame = reader.next();
      if (frame.kind === 'bad') throw new Error(`${frame.reason} at offset ${frame.start}`);
      if (frame.kind === 'eof') return undefined;
      return decodePayload(frame.payload) as Record<string, unknown>;
    };
    const header = read();
    if (header?.['t'] !== 'snapshot' || header['v'] !== FORMAT_VERSION || header['gen'] !== gen) {
      throw new Error(`bad snapshot header ${JSON.stringify(header)}`);
    }
    const messages = new Map<number, StoredMessage>();
    let records = 0;
    for (;;) {
      const record = read();
      if (!record) throw new Error('snapshot has no end record');
      if (record['t'] === 'end') {
        if (record['records'] !== records) throw new Error(`snapshot end says ${String(record['records'])} records, read ${records}`);
        return;
      }
      state.importRecord(record as unknown as SnapshotRecord, messages);
      records += 1;
    }
  } finally {
    closeSync(fd);
  }
}
