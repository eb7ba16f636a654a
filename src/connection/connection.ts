/**
 * Owns one byte stream (TCP, TLS, WebSocket stream...): feeds the decoder, hands packets to the
 * channel one at a time, writes with batching and backpressure. Nothing protocol-specific here.
 */
import { Buffer } from 'node:buffer';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Decoder, encode, type DecodeError, type DecoderHandlers } from '../codec/codec.js';
import type { Packet } from '../codec/codec.js';
import { RC, V3_CONNACK } from '../codec/reason-codes.js';
import { Channel, type ChannelDeps, type Transport } from '../channel/channel.js';
import { readDirect } from './direct-read.js';
import { RawSocket, type RawSocketOwner } from './raw-tcp.js';

/** What a Connection uses of its byte stream: a `net.Socket`, `tls.TLSSocket` or WebSocket
 *  stream (Duplex streams), or a RawSocket (raw-tcp.ts), which has the same members. */
type ByteStream = {
  write(bytes: Buffer): boolean;
  end(): void;
  destroy(): void;
  readonly destroyed: boolean;
  pause(): void;
  resume(): void;
  readonly writableLength: number;
  remoteAddress?: string;
  remotePort?: number;
  setNoDelay?: (b: boolean) => void;
};

/**
 * Connections with output not yet written. Output is gathered per connection and written by
 * `flushAll`, at one of two moments chosen by load (see `endRead`):
 * - **at the end of the turn** (busy loop): one `setImmediate` runs after the poll phase, so every
 *   packet read in one turn (from every socket) is handled before anything is written, and each
 *   connection gets one write per turn however many reads fed it;
 * - **at the end of the read** (quiet loop, one read per turn): nothing could be gathered with
 *   the output of other reads, and the immediate would cost a pass through Node's callback
 *   machinery (MakeCallback, async context, the immediate queue) before the bytes leave. Evenly
 *   paced QoS 1 at 5k msg/s: 5 us less CPU per message (96 -> 91) and p90 10 us lower.
 * Output made outside a read (timers, store completions, a channel resumed by a write) always
 * waits for the end of the turn.
 */
let pendingFlush: (Connection | null)[] = [];
let pendingCount = 0;
/** The other list: the two are swapped by each flush, so no array is made per turn. Slots are
 *  cleared to null rather than the list emptied with `length = 0`, which would free its backing
 *  store and make the next turn's first push allocate a new one (about 150 B per turn, 7% of
 *  what an evenly paced QoS 1 message allocates). */
let spareFlush: (Connection | null)[] = [];
/** A list longer than this after a flush (a burst of writes to many connections) is let go. */
const KEEP_SLOTS = 1024;

/** `turnEnd` is queued with setImmediate. */
let turnEndArmed = false;
/** Reads being handled (`Connection.onData` on the stack): output waits for `endRead`. */
let readDepth = 0;
/** Output of a read is written when the read is handled (quiet loop), not at the end of the turn. */
let flushAfterRead = true;
/** Reads counted in this turn: in batched mode every turn's, in eager mode a probed turn's. */
let readsThisTurn = 0;
/** Eager mode: a turn is probed (its reads counted) every PROBE_EVERY reads. */
let probing = false;
let readsToProbe = 1;
/** Batched mode: consecutive turns that carried a single read. */
let quietTurns = 0;
/** A probed turn with this many reads (counted from the one that armed the probe) is busy:
 *  batch. Three, not two: a publisher's PUBLISH and a subscriber's PUBACK of the message before
 *  often share a turn at moderate rates, and write to different sockets anyway. */
const BUSY_READS = 3;
const PROBE_EVERY = 16;
/** Batched mode goes back to eager after this many turns in a row with a single read. */
const QUIET_TURNS = 16;

function flushAll(): void {
  const list = pendingFlush;
  const n = pendingCount;
  // Writes made while flushing (a channel resumed by a write that went through) go to the
  // other list and get the next turn's flush.
  pendingFlush = spareFlush;
  pendingCount = 0;
  for (let i = 0; i < n; i++) {
    const c = list[i]!;
    list[i] = null;
    c.flush();
  }
  spareFlush = list.length > KEEP_SLOTS ? [] : list;
}

function armTurnEnd(): void {
  if (turnEndArmed) return;
  turnEndArmed = true;
  setImmediate(turnEnd);
}

/** The end of an event-loop turn: picks the mode for the turns to come, writes what is pending. */
function turnEnd(): void {
  turnEndArmed = false;
  const reads = readsThisTurn;
  readsThisTurn = 0;
  if (flushAfterRead) {
    if (probing) {
      probing = false;
      if (reads >= BUSY_READS) {
        flushAfterRead = false;
        quietTurns = 0;
      }
    }
  } else if (reads === 1) {
    if (++quietTurns >= QUIET_TURNS) {
      flushAfterRead = true;
      readsToProbe = PROBE_EVERY;
    }
  } else if (reads > 1) {
    quietTurns = 0;
  }
  if (pendingCount > 0) flushAll();
}

function beginRead(): void {
  readDepth++;
}

/** A read is handled: its output is written now (eager) or the turn's end is armed (batched). */
function endRead(): void {
  if (--readDepth > 0) return;
  if (flushAfterRead) {
    if (probing) readsThisTurn++;
    else if (--readsToProbe <= 0) {
      readsToProbe = PROBE_EVERY;
      probing = true;
      readsThisTurn = 1;
      armTurnEnd();
    }
    if (pendingCount > 0) flushAll();
  } else {
    readsThisTurn++;
    armTurnEnd();
  }
}

/** The write mode and counters, for tests. */
export function outputTiming(): { flushAfterRead: boolean; turnEndArmed: boolean } {
  return { flushAfterRead, turnEndArmed };
}

const CONN = Symbol('skein.connection');
type Stream = Duplex & { [CONN]: Connection };
function onData(this: Stream, chunk: Buffer): void {
  this[CONN].onData(chunk);
}
function onError(this: Stream, err: Error): void {
  this[CONN].onError(err);
}
function onClose(this: Stream): void {
  this[CONN].onClosed();
}
function onEnd(this: Stream): void {
  this[CONN].onEnd();
}
function onDrain(this: Stream): void {
  this[CONN].channel.onWritable();
}

/** Output gathered past this many bytes is written at once (one copy of at most this much). */
const CONCAT_MAX = 64 * 1024;
/** Size of the buffer four-byte acks are gathered in (see `writeAck`). */
const ACKS_BYTES = 256;

export class Connection implements Transport, DecoderHandlers, RawSocketOwner {
  readonly channel: Channel;
  private readonly decoder: Decoder;
  private version: 3 | 4 | 5 = 4;
  /** Output of this event-loop turn, written by `flush`: one Buffer (the common case: no array
   *  per turn) or, from the second write on, a list of them. */
  private out: Buffer | Buffer[] | undefined;
  private outBytes = 0;
  /** This turn's four-byte acks not yet in `out` (they go there, in order, before any other
   *  output and at the flush): one Buffer for many acks instead of one each. */
  private acks: Buffer | undefined;
  private acksUsed = 0;
  private ended = false;
  /** `close`'s grace timer; cleared when the stream closes first (it holds this connection). */
  private destroyTimer: NodeJS.Timeout | undefined;
  private registry: Set<Connection> | undefined;
  private readonly stats: ChannelDeps['broker']['stats'];
  /** Reads come through `readDirect`, not 'data' events (bytes handed in by the caller, e.g. what
   *  followed a PROXY header, go to `onData`, never back into the stream). */
  readonly directRead: boolean;

  constructor(
    private readonly stream: ByteStream,
    deps: ChannelDeps,
    private readonly logger: Logger,
    /** The client's address when the stream's peer is not the client (PROXY protocol, WebSocket). */
    private readonly givenAddress?: string,
    /** Username from the client's TLS certificate (see Transport.certificateUsername). */
    readonly certificateUsername?: string | null,
  ) {
    stream.setNoDelay?.(true);
    this.channel = new Channel(this, deps);
    this.decoder = new Decoder(this, deps.broker.options.maxPacketSize);
    this.stats = deps.broker.stats;
    if (stream instanceof RawSocket) {
      // No stream events: the socket calls this connection's onData / onError / onDrain / onClosed.
      stream.owner = this;
      this.directRead = true;
      return;
    }
    // Shared listener functions find their Connection on the stream: no closures per connection
    // (an idle connection's memory is mostly what is allocated here).
    (stream as unknown as Record<symbol, Connection>)[CONN] = this;
    const duplex = stream as unknown as Stream;
    // Plain TCP reads skip Node's Readable layer where this Node allows it (direct-read.ts).
    this.directRead = readDirect(duplex, onData);
    if (!this.directRead) duplex.on('data', onData);
    duplex.on('error', onError);
    duplex.on('close', onClose);
    // A socket that is not half-open ends its side by itself when the peer's FIN arrives; calling
    // end() again would only build an ERR_STREAM_ALREADY_FINISHED error.
    if (duplex.allowHalfOpen !== false) duplex.on('end', onEnd);
    duplex.on('drain', onDrain);
  }

  /** A RawSocket may lend this connection reads made only of acks, PINGREQ and DISCONNECT (see
   *  raw-tcp.ts `onlyViewlessFrames`): the framer copies partial frames, and those decode to
   *  numbers, so nothing of such a chunk is kept past `onData`. A getter: no field per connection. */
  get lendsViewlessReads(): boolean {
    return true;
  }

  /** `host:port` of the client; built when asked (logs, authentication), not kept per connection. */
  get remoteAddress(): string {
    const s = this.stream;
    return this.givenAddress ?? `${s.remoteAddress ?? 'unknown'}:${s.remotePort ?? 0}`;
  }

  /** Adds this connection to a listener's set; it leaves the set when the stream closes
   *  (a field rather than a `once('close')` closure per connection). */
  trackIn(set: Set<Connection>): void {
    this.registry = set;
    set.add(this);
  }

  /** Decoder handler: one whole packet. */
  packet(p: Packet): void {
    if (p.cmd === 'publish') this.channel.handlePublishPacket(p);
    else this.channel.handle(p);
  }

  /** Decoder handler: a two-byte PUBACK / PUBCOMP (see DecoderHandlers.ack). */
  ack(b0: number, packetId: number): boolean {
    return this.channel.handleAck(b0, packetId);
  }

  /** Decoder handler: malformed or oversized input. */
  error(e: DecodeError): void {
    this.onDecodeError(e.reasonCode, e.message);
  }

  /** Bytes `chunk[start .. end)` read from the stream (the whole chunk for stream 'data'). */
  onData(chunk: Buffer, start = 0, end = chunk.length): void {
    this.stats.bytesReceived += end - start;
    // The store writes for the acks in one read go out together (Broker.deliveryOps).
    const broker = this.channel.broker;
    broker.beginDeliveryBatch();
    beginRead();
    try {
      this.decoder.push(chunk, start, end);
    } finally {
      broker.endDeliveryBatch();
      endRead();
    }
  }

  onClosed(): void {
    this.ended = true;
    if (this.destroyTimer !== undefined) {
      clearTimeout(this.destroyTimer);
      this.destroyTimer = undefined;
    }
    this.registry?.delete(this);
    this.channel.onTransportClosed();
  }

  onError(err: Error): void {
    this.logger.debug({ err: err.message, remote: this.remoteAddress }, 'socket error');
  }

  onEnd(): void {
    this.stream.end();
  }

  /** Output refused earlier is written: the channel may go on. */
  onDrain(): void {
    this.channel.onWritable();
  }

  setProtocolVersion(v: 3 | 4 | 5): void {
    this.version = v;
    this.decoder.protocolVersion = v;
  }

  encode(packet: Packet): Buffer {
    return encode(packet, this.version);
  }

  writeAck(b0: number, id: number): void {
    if (this.ended || this.stream.destroyed) return;
    let acks = this.acks;
    if (acks !== undefined && this.acksUsed + 4 > acks.length) {
      this.closeAcks();
      acks = undefined;
    }
    if (acks === undefined) {
      if (this.out === undefined) this.schedule(); // the first output of this turn
      acks = this.acks = Buffer.allocUnsafe(ACKS_BYTES);
      this.acksUsed = 0;
    }
    const i = this.acksUsed;
    acks[i] = b0;
    acks[i + 1] = 2;
    acks[i + 2] = id >> 8;
    acks[i + 3] = id & 0xff;
    this.acksUsed = i + 4;
    this.stats.bytesSent += 4;
  }

  /** Moves the gathered acks into `out`, behind what is there (the flush is already scheduled). */
  private closeAcks(): void {
    const acks = this.acks!;
    const used = this.acksUsed;
    this.acks = undefined;
    this.acksUsed = 0;
    this.append(acks.subarray(0, used));
  }

  private schedule(): void {
    pendingFlush[pendingCount++] = this;
    if (readDepth === 0) armTurnEnd();
  }

  write(bytes: Buffer): void {
    if (this.ended || this.stream.destroyed) return;
    this.stats.bytesSent += bytes.length;
    if (this.acks !== undefined) this.closeAcks();
    else if (this.out === undefined) this.schedule(); // the first output of this turn
    this.append(bytes);
  }

  /** Adds bytes to this turn's output (the flush is already scheduled). */
  private append(bytes: Buffer): void {
    this.outBytes += bytes.length;
    const out = this.out;
    if (out !== undefined) {
      if (Array.isArray(out)) out.push(bytes);
      else this.out = [out, bytes];
      // A large burst (a publisher's 64 KB read fanned out) goes out now rather than growing
      // one huge write at the end of the turn.
      if (this.outBytes >= CONCAT_MAX) this.flush();
      return;
    }
    this.out = bytes;
  }

  /** Writes this turn's output: one chunk (a single copy when small) = one syscall. */
  flush(): void {
    if (this.acks !== undefined) this.closeAcks();
    const out = this.out;
    if (out === undefined) return;
    const n = this.outBytes;
    this.out = undefined;
    this.outBytes = 0;
    const stream = this.stream;
    if (stream.destroyed) return;
    const ok = stream.write(Array.isArray(out) ? Buffer.concat(out, n) : out);
    // The stream took it without queueing: a channel that held back output may go on ('drain'
    // only follows a write that was refused).
    if (ok) this.channel.onWritable();
  }

  pauseInput(): void {
    this.stream.pause();
  }

  resumeInput(): void {
    this.stream.resume();
  }

  get bufferedBytes(): number {
    return this.outBytes + this.acksUsed + this.stream.writableLength;
  }

  close(): void {
    if (this.ended) return;
    this.flush();
    this.ended = true;
    // Flush what is written (e.g. CONNACK with an error code, DISCONNECT), then close; a peer
    // that does not read gets destroyed after a short grace period.
    this.stream.end();
    this.destroyTimer = setTimeout(() => this.stream.destroy(), 2000).unref();
  }

  private onDecodeError(reasonCode: number, message: string): void {
    const ch = this.channel;
    this.logger.debug({ clientId: ch.clientId, remote: this.remoteAddress, reasonCode, message }, 'malformed input');
    if (ch.state === 'awaiting-connect' && /protocol version/i.test(message)) {
      // Unsupported protocol level: CONNACK 0x01 (3.1.1 format) then close [MQTT-3.1.2-2].
      this.write(encode({ cmd: 'connack', sessionPresent: false, returnCode: V3_CONNACK.UnacceptableProtocolVersion }, 4));
      void ch.close(message);
      return;
    }
    if (ch.state === 'awaiting-connect' && /protocolId/i.test(message)) {
      // Wrong protocol name: close without CONNACK [MQTT-3.1.2-1].
      void ch.close(message);
      return;
    }
    ch.fail(reasonCode === RC.PacketTooLarge ? RC.PacketTooLarge : RC.MalformedPacket, message);
  }
}
