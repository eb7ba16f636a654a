/**
 * Reads a plain TCP `net.Socket` without its Readable stream layer: libuv reads into one buffer of
 * this module, and a callback hands each read's bytes to the connection.
 *
 * Why by hand: per socket read, Node's stream path allocates a 64 KiB buffer in C++ and shrinks
 * it, wraps it in a new ArrayBuffer (which every scavenge then has to sweep), pushes it through
 * Readable (`push`, `addChunk`, `emit('data')`) and schedules a `maybeReadMore` tick (one more
 * turn of `processTicksAndRejections`, which in Node 20 makes a new Map at each drain). Node has
 * the lighter path built in, for client sockets only: `net.connect({ onread: { buffer, callback }
 * })` (documented since Node 12). No public API gives it to a socket a server accepted, so this
 * module turns it on the way `new net.Socket({ onread })` does: the socket's own `kBuffer` /
 * `kBufferCb` slots (found by their symbol descriptions) and `_handle.useUserBuffer`. Everything
 * else stays Node's: `pause()`/`resume()` stop and start reading (net.Socket handles `kBuffer`
 * sockets there), end of stream still comes as 'end' and errors as 'error', and writing is the
 * stream's. Where any of those pieces is missing (another Node version, a TLS or WebSocket
 * stream), `readDirect` returns false and the caller reads 'data' events as before.
 *
 * Each read is copied out of the shared buffer before the decoder sees it: decoded payloads and
 * the framer's frames are views into the chunk and may be kept (queued messages), so the shared
 * buffer must not be handed out. The copy is of the bytes read (a few hundred in a latency-bound
 * load, at most 64 KiB), into a slab shared by small reads or a Buffer of its own (`copyReadOut`),
 * and takes the place of the allocation Node would have made.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { VIEW_PIN_SLACK } from '../codec/codec.js';

/** Bytes libuv may read at once into the shared buffer (Node's own per-read allocation). */
const READ_BYTES = 64 * 1024;

/** The buffer every direct socket and every RawSocket (raw-tcp.ts) reads into. Reads are handled
 *  one at a time on this thread and each is copied out (or lent, see raw-tcp.ts) before the next,
 *  so one buffer serves all sockets. Never released: libuv holds a raw pointer to it. */
let shared: Buffer | undefined;

export function sharedReadBuffer(): Buffer {
  return (shared ??= Buffer.allocUnsafeSlow(READ_BYTES));
}

/**
 * Small reads are copied into slabs of this size, one after another, instead of each into an
 * ArrayBuffer of its own. An evenly paced QoS 1 load is one read of about 90 bytes per message;
 * an ArrayBuffer per read was the one per-message ArrayBuffer left, and each costs a backing
 * store malloc and, at the next scavenge, a sweep and a free: half of a scavenge's pause
 * (`sweep_array_buffers` in `--trace-gc-nvp`, BENCHMARKS.md). A view kept into a slab (a queued
 * or retained payload, a will) pins at most this much: `VIEW_PIN_SLACK`, the slack
 * `handlePublish` allows a kept payload before it copies it (publish.ts). So no payload is copied
 * because of the slab, and none pins more than that rule already let it.
 */
export const READ_SLAB_BYTES = VIEW_PIN_SLACK;
/** Reads above this size get a Buffer of their own, of exactly their size (a slab would waste
 *  up to this much of its end when a read does not fit). */
const SLAB_READ_MAX = READ_SLAB_BYTES / 2;
let slab: Buffer | undefined;
let slabUsed = READ_SLAB_BYTES;

let out: Buffer | undefined;

/**
 * Copies the first `n` bytes of the shared buffer out, to memory nothing else writes into, and
 * returns where they start in `readOutBuffer()`: the current slab (a new one when they do not
 * fit) for a small read, a Buffer of exactly `n` bytes (start 0) otherwise. A position, not a
 * Buffer: the caller hands the range on (raw-tcp.ts) without an object per read.
 */
export function copyReadOut(n: number): number {
  const src = shared!;
  if (n > SLAB_READ_MAX) {
    out = Buffer.allocUnsafeSlow(n);
    src.copy(out, 0, 0, n);
    return 0;
  }
  let start = slabUsed;
  let s = slab;
  if (s === undefined || start + n > READ_SLAB_BYTES) {
    s = slab = Buffer.allocUnsafeSlow(READ_SLAB_BYTES);
    start = 0;
  }
  // A byte loop, not Buffer#copy: Node 20's copy of part of a buffer makes a Uint8Array view of
  // the source first (lib/buffer.js _copyActual), an object per read; a few hundred bytes
  // copy as fast this way.
  for (let i = 0; i < n; i++) s[start + i] = src[i]!;
  slabUsed = start + n;
  out = s;
  return start;
}

/** The buffer the last `copyReadOut` copied into. */
export function readOutBuffer(): Buffer {
  return out!;
}

/** `copyReadOut` as a Buffer of its own range (for callers that take a Buffer per read). */
export function copyRead(n: number): Buffer {
  const start = copyReadOut(n);
  const b = out!;
  return start === 0 && b.length === n ? b : b.subarray(start, start + n);
}

interface Slots {
  buffer: symbol;
  callback: symbol;
}
/** Node's private slots for `onread`, looked up once; null = not available here. */
let slots: Slots | null | undefined;

function findSlots(socket: net.Socket): Slots | null {
  let buffer: symbol | undefined;
  let callback: symbol | undefined;
  for (const s of Object.getOwnPropertySymbols(socket)) {
    if (s.description === 'kBuffer') buffer = s;
    else if (s.description === 'kBufferCb') callback = s;
  }
  return buffer !== undefined && callback !== undefined ? { buffer, callback } : null;
}

/** Gets each read's bytes, with `this` = the socket. */
export type DirectReadHandler<S> = (this: S, chunk: Buffer) => void;
/** What Node calls as `socket[kBufferCb](nread, buffer)` after each successful read. */
type NodeCallback = (this: unknown, nread: number) => void;

/** One Node-facing callback per handler (callers pass a shared function): no closure per socket. */
const callbacks = new WeakMap<DirectReadHandler<unknown>, NodeCallback>();

type Handle = { useUserBuffer?: (b: Buffer) => void };
type Raw = net.Socket & Record<symbol, unknown> & { _handle?: Handle | null };

/**
 * Switches `socket` to direct reads: from now on each read calls `onChunk` with `this` = the
 * socket and a Buffer of its own, and no 'data' event is emitted. Call it before any data was
 * read, or with the socket paused and nothing buffered in its Readable. Returns false (and
 * changes nothing) when this Node or this stream does not allow it.
 */
export function readDirect<S extends Duplex>(socket: S, onChunk: DirectReadHandler<S>): boolean {
  // Only the plain TCP socket: TLS and other Duplex streams keep their own read paths.
  if (socket.constructor !== net.Socket) return false;
  const raw = socket as unknown as Raw;
  const handle = raw._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function') return false;
  if (slots === undefined) slots = findSlots(raw);
  if (slots === null) return false;
  // The slots must be the ones net.Socket's constructor set (null when no onread was given).
  if (raw[slots.buffer] !== null || raw[slots.callback] !== null) return false;
  if (raw.readableLength > 0) return false;
  const buffer = sharedReadBuffer();
  raw[slots.buffer] = buffer;
  let callback = callbacks.get(onChunk as DirectReadHandler<unknown>);
  if (callback === undefined) {
    callback = function onDirectRead(this: unknown, nread: number): void {
      onChunk.call(this as S, copyRead(nread));
    };
    callbacks.set(onChunk as DirectReadHandler<unknown>, callback);
  }
  raw[slots.callback] = callback;
  handle.useUserBuffer(buffer);
  return true;
}

