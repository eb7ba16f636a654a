/**
 * Splits a byte stream into whole MQTT control packets using only the fixed header (MQTT 5.0
 * §2.1.1: type byte + Remaining Length as a Variable Byte Integer).
 *
 * Written by hand because mqtt-packet's parser reads packet fields against everything it has
 * buffered, not against the packet's own Remaining Length: a property that runs past the end of
 * its packet is silently completed with bytes of the NEXT packet when both arrive in one TCP read,
 * so whether a stream is accepted depends on how it was split. Framing first and handing the
 * parser exactly one packet at a time makes the result independent of chunking, and lets the size
 * limit be enforced before a large body is buffered.
 *
 * A frame is a view (subarray) of the chunk pushed (of the range pushed), or of a fresh
 * Buffer.concat of a kept remainder and the chunk; the framer never writes into either
 * afterwards, so a consumer may keep views into a frame (decoded payloads do).
 */
import { Buffer } from 'node:buffer';

/**
 * How many bytes beyond its own length a kept view (a payload held in a queue, a retained
 * message, a will) may pin in the buffer it views. `handlePublish` copies a payload that may be
 * kept when its buffer is larger than that; the plain-TCP read path packs small reads into slabs
 * of this size (connection/direct-read.ts), so a view into a slab is never copied for it.
 */
export const VIEW_PIN_SLACK = 1024;

export interface FramerHandlers {
  /** One whole packet, fixed header included. The buffer may be a view into the input chunk. */
  frame(bytes: Buffer, remainingLength: number): void;
  /** The stream cannot be framed: a malformed Remaining Length, or a packet above the limit. */
  error(kind: 'malformed' | 'too-large', message: string, remainingLength?: number): void;
}

/**
 * The framing loop, for subclasses (the Decoder extends it directly, so a connection's decoder is
 * one small object without handler closures).
 */
export abstract class FrameReader {
  /** Bytes of an incomplete packet carried over from earlier chunks. */
  protected pending: Buffer | undefined = undefined;
  protected failed = false;

  constructor(
    /** Largest whole packet accepted, in bytes. */
    public maxPacketSize: number,
  ) {}

  /** One whole packet, fixed header included: `buf[start .. start + total)`, with its Remaining
   *  Length. Positions instead of a subarray: no Buffer object per packet on the hot path. */
  protected abstract onFrame(buf: Buffer, start: number, total: number, remainingLength: number): void;
  /** The stream cannot be framed; called once, after which input is ignored (`stop`). */
  protected abstract onFramingError(kind: 'malformed' | 'too-large', message: string, remainingLength?: number): void;

  /** Frames the bytes `chunk[start .. end)` (the whole chunk by default). A range rather than a
   *  subarray lets a reader hand over part of a larger buffer (a read slab, the shared read
   *  buffer) without a Buffer object per read. */
  push(chunk: Buffer, start = 0, end = chunk.length): void {
    if (this.failed) return;
    let buf = chunk;
    let pos = start;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk.subarray(start, end)]);
      this.pending = undefined;
      pos = 0;
      end = buf.length;
    }
    while (pos < end && !this.failed) {
      // Remaining Length: up to 4 bytes, 7 bits each [MQTT-1.5.5-1].
      let length = 0;
      let multiplier = 1;
      let i = pos + 1;
      let complete = false;
      for (let n = 0; n < 4 && i < end; n++, i++) {
        const byte = buf[i]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
        if (n === 3) {
          this.onFramingError('malformed', 'remaining length longer than 4 bytes');
          this.stop();
          return;
        }
      }
      if (!complete) break; // header not complete yet
      const headerSize = i - pos;
      const total = headerSize + length;
      if (total > this.maxPacketSize) {
        this.onFramingError('too-large', `packet of ${total} bytes exceeds the maximum packet size ${this.maxPacketSize}`, length);
        this.stop();
        return;
      }
      if (pos + total > end) break; // body not complete yet
      this.onFrame(buf, pos, total, length);
      pos += total;
    }
    if (!this.failed && pos < end) {
      // Keep the partial packet. Copy so a large chunk is not pinned by a small remainder.
      this.pending = Buffer.from(buf.subarray(pos, end));
    }
  }

  /** Ignore all further input and drop any partial packet. */
  protected stop(): void {
    this.failed = true;
    this.pending = undefined;
  }
}

/** A FrameReader reporting to handler callbacks. */
export class Framer extends FrameReader {
  constructor(
    private readonly handlers: FramerHandlers,
    maxPacketSize: number,
  ) {
    super(maxPacketSize);
  }

  protected override onFrame(buf: Buffer, start: number, total: number, remainingLength: number): void {
    this.handlers.frame(buf.subarray(start, start + total), remainingLength);
  }

  protected override onFramingError(kind: 'malformed' | 'too-large', message: string, remainingLength?: number): void {
    this.stop();
    this.handlers.error(kind, message, remainingLength);
  }
}
