/**
 * Plain TCP on Node's libuv handles without `net.Server` / `net.Socket`: a listening handle whose
 * accepted sockets are `RawSocket`s, small objects that read into one shared buffer, write with
 * Node's own write requests and hand every event straight to their owner (a Connection, or the
 * PROXY header reader before it).
 *
 * Why by hand: a `net.Socket` is a Duplex stream. Building one per accepted connection (its
 * Readable and Writable states, its event listeners, the handle's stream glue) and tearing it
 * down again cost more on a small machine than everything else a connect does: on the 2 vCPU AMD
 * machine of BENCHMARKS.md a bare `net` server answering CONNECT with CONNACK did about 9k
 * connects/s on one core, the same server on these handles about 19k, Mosquitto 18-23k. No
 * library gives a server socket without the stream: this module is the part of `net.js` Skein
 * needs (accept, read, write with backpressure, half-close, close), on the same C++ objects.
 *
 * The handles come from `process.binding('tcp_wrap')` and `process.binding('stream_wrap')`. These
 * are documented as deprecated (DEP0111, documentation only, no runtime warning) and still on the
 * short list `process.binding` serves on Node's main branch (lib/internal/bootstrap/realm.js, which
 * returns the internal binding itself); Node's own tests check both are there. Everything is
 * looked up and checked once (`rawTcpSupported`); where a piece is missing (another runtime, a
 * future Node that drops them, or Node's permission model, under which `process.binding` throws)
 * the TCP listener falls back to `net.Server` and says so in its log, and
 * `listeners[].socketLayer: "net"` chooses that path outright.
 *
 * What stays Node's: libuv does the accept (with its EMFILE handling), the reads, the writes (a
 * write is tried at once and queued in libuv when the socket buffer is full), shutdown and close.
 * Semantics follow a `net.Socket` of a server with `allowHalfOpen: false`: the peer's FIN ends our
 * side too once queued writes are out; `end()` sends what is queued, then a FIN, and closes when
 * the peer's FIN arrives (the caller bounds that wait); `destroy()` closes at once.
 */
import dns from 'node:dns/promises';
import net from 'node:net';
import { getDefaultHighWaterMark } from 'node:stream';
import util from 'node:util';
import { copyReadOut, readOutBuffer, sharedReadBuffer } from './direct-read.js';

/** What a RawSocket hands its events to. Each is called at most until `onClosed`, which comes
 *  once, after the handle is closed. */
export interface RawSocketOwner {
  /** Bytes read: `chunk[start .. end)`, in memory nothing else writes into (the owner may keep
   *  views of it), unless lent (see `lendsViewlessReads`). A range, not a Buffer per read: small
   *  reads arrive as a part of a read slab (direct-read.ts). */
  onData(chunk: Buffer, start: number, end: number): void;
  /** A read or write failed; the socket is being destroyed. */
  onError(err: Error): void;
  /** Queued writes went out after `write` returned false. */
  onDrain(): void;
  /** The handle is closed (by either side, or by an error). */
  onClosed(): void;
  /** True when this owner keeps nothing of a chunk made only of the frames `onlyViewlessFrames`
   *  accepts, so such a read may be lent as a view of the shared buffer instead of copied (the
   *  Connection: its framer copies any partial remainder, and those frames decode to numbers). */
  readonly lendsViewlessReads?: boolean;
}

// The shapes of the binding objects this module uses (Node 20's src/tcp_wrap.cc, stream_base.cc).
interface StreamHandle {
  onread: ((this: StreamHandle, arrayBuffer: unknown) => void) | null;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
  shutdown(req: ShutdownReq): number;
  close(cb?: () => void): void;
  setNoDelay(enable: boolean): number;
  getpeername(out: Record<string, unknown>): number;
  getsockname(out: Record<string, unknown>): number;
  [OWNER]?: RawSocket;
}
interface ServerHandle {
  onconnection: ((err: number, client: StreamHandle | undefined) => void) | null;
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  getsockname(out: Record<string, unknown>): number;
  close(cb?: () => void): void;
}
interface WriteReq {
  oncomplete: (this: WriteReq, status: number) => void;
  handle: StreamHandle;
  bytes: number;
  buffer: Uint8Array | null;
  [OWNER]?: RawSocket;
}
interface ShutdownReq {
  oncomplete: (this: ShutdownReq, status: number) => void;
  handle: StreamHandle;
  [OWNER]?: RawSocket;
}
interface Bindings {
  TCP: new (type: number) => ServerHandle;
  serverType: number;
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  state: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const OWNER = Symbol('skein.rawSocket');
/** libuv's "end of file" read status (the same on every platform). */
const UV_EOF = -4095;
/** Node's listen backlog for `net.Server`. */
const BACKLOG = 511;

let bindings: Bindings | null | undefined;
let whyNot = '';

/** Looks the bindings up once; null (with `rawTcpUnsupportedReason`) when this runtime lacks one. */
function load(): Bindings | null {
  if (bindings !== undefined) return bindings;
  bindings = null;
  try {
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
    if (typeof binding !== 'function') throw new Error('process.binding is not there');
    const tcp = binding('tcp_wrap');
    const stream = binding('stream_wrap');
    const TCP = tcp.TCP as Bindings['TCP'] | undefined;
    const constants = tcp.constants as { SERVER?: number } | undefined;
    const proto = TCP?.prototype as Partial<Record<string, unknown>> | undefined;
    const need = ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'close', 'setNoDelay', 'getpeername', 'getsockname', 'bind', 'bind6', 'listen'];
    const missing = need.filter((m) => typeof proto?.[m] !== 'function');
    if (!TCP || typeof constants?.SERVER !== 'number' || missing.length > 0) throw new Error(`tcp_wrap lacks ${missing.join(', ') || 'TCP'}`);
    const state = stream.streamBaseState;
    const idx = ['kReadBytesOrError', 'kLastWriteWasAsync'].map((k) => stream[k]);
    if (!(state instanceof Int32Array) || idx.some((i) => typeof i !== 'number') || typeof stream.WriteWrap !== 'function' || typeof stream.ShutdownWrap !== 'function') {
      throw new Error('stream_wrap lacks streamBaseState, its indexes or the request types');
    }
    bindings = {
      TCP,
      serverType: constants.SERVER,
      WriteWrap: stream.WriteWrap as Bindings['WriteWrap'],
      ShutdownWrap: stream.ShutdownWrap as Bindings['ShutdownWrap'],
      state,
      kReadBytesOrError: idx[0] as number,
      kLastWriteWasAsync: idx[1] as number,
    };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    whyNot = e.code ? `${e.code}: ${e.message}` : e.message;
  }
  return bindings;
}

/** Whether this runtime has what RawTcpServer needs; if not, `rawTcpUnsupportedReason()` says why. */
export function rawTcpSupported(): boolean {
  return load() !== null;
}

export function rawTcpUnsupportedReason(): string {
  load();
  return whyNot;
}

/** An Error like the ones `net` raises for a libuv status (`code`, `errno`, `syscall`). */
function uvError(status: number, syscall: string, where?: string): NodeJS.ErrnoException {
  const [code, message] = util.getSystemErrorMap().get(status) ?? [`E${-status}`, 'unknown error'];
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${code}: ${message}${where ? ` ${where}` : ''}`);
  err.code = code;
  err.errno = status;
  err.syscall = syscall;
  return err;
}

/** Write requests whose write went through at once: the C++ side never touched them, so the next
 *  write may use one again (a request that was queued belongs to libuv until it completes). */
let spareReq: WriteReq | undefined;

/**
 * True when every whole MQTT frame at the start of `buf[0 .. n)` is a four-byte PUBACK, PUBREC,
 * PUBREL or PUBCOMP without properties, a PINGREQ or a DISCONNECT without properties: frames
 * whose handling keeps no view of the bytes. What follows the last whole frame is a partial one,
 * which the framer copies. A subscriber's stream of acknowledgements is the common case: its reads
 * are lent, not copied, which takes an ArrayBuffer per read off the garbage collector.
 */
export function onlyViewlessFrames(buf: Uint8Array, n: number): boolean {
  let pos = 0;
  while (pos + 1 < n) {
    const b0 = buf[pos]!;
    const length = buf[pos + 1]!;
    if (length === 2 && (b0 === 0x40 || b0 === 0x50 || b0 === 0x62 || b0 === 0x70)) pos += 4;
    else if (length === 0 && (b0 === 0xc0 || b0 === 0xe0)) pos += 2;
    else return false;
  }
  return true;
}

function onRead(this: StreamHandle): void {
  const sock = this[OWNER];
  if (sock === undefined) return;
  const b = bindings!;
  const n = b.state[b.kReadBytesOrError]!;
  if (n > 0) {
    const owner = sock.owner;
    const buf = sharedReadBuffer();
    if (owner.lendsViewlessReads === true && onlyViewlessFrames(buf, n)) owner.onData(buf, 0, n);
    else {
      const start = copyReadOut(n);
      owner.onData(readOutBuffer(), start, start + n);
    }
  } else if (n < 0) {
    sock.readFailed(n);
  }
}

function onWriteComplete(this: WriteReq, status: number): void {
  const sock = this[OWNER];
  this.buffer = null;
  if (sock !== undefined) sock.writeDone(this.bytes, status);
}

function onShutdownComplete(this: ShutdownReq): void {
  this[OWNER]?.shutdownDone();
}

function onHandleClose(this: StreamHandle): void {
  this[OWNER]?.handleClosed();
}

const highWaterMark = typeof getDefaultHighWaterMark === 'function' ? getDefaultHighWaterMark(false) : 16 * 1024;

export class RawSocket {
  /** Gets every event; set by whoever takes the socket (the listener, then its Connection). */
  owner: RawSocketOwner;
  /** Bytes in writes libuv has queued (the socket buffer was full). */
  writableLength = 0;
  private closing = false;
  private closedNotified = false;
  private ending = false;
  private shutdownSent = false;
  private eof = false;
  private needDrain = false;
  private paused = true;
  private peer: { address?: string; port?: number } | undefined;
  /** The server whose `count` this socket is in (left when it closes). */
  server: RawTcpServer | undefined;

  constructor(
    private readonly handle: StreamHandle,
    owner: RawSocketOwner,
  ) {
    this.owner = owner;
    handle[OWNER] = this;
    handle.onread = onRead;
    handle.useUserBuffer(sharedReadBuffer());
  }

  /** Like `net.Socket.destroyed`: true from `destroy()` (or a failure) on. */
  get destroyed(): boolean {
    return this.closing;
  }

  get remoteAddress(): string | undefined {
    return this.peerName().address;
  }

  get remotePort(): number | undefined {
    return this.peerName().port;
  }

  /** Asked once and kept (a closed handle has no peer any more). */
  private peerName(): { address?: string; port?: number } {
    if (this.peer === undefined) {
      const out: Record<string, unknown> = {};
      this.peer = !this.closing && this.handle.getpeername(out) === 0 ? { address: out.address as string, port: out.port as number } : {};
    }
    return this.peer;
  }

  setNoDelay(enable: boolean): void {
    if (!this.closing) this.handle.setNoDelay(enable);
  }

  /** Starts (again) handing reads to the owner. */
  resume(): void {
    if (!this.paused || this.closing || this.eof) return;
    const err = this.handle.readStart();
    if (err !== 0) return this.fail(uvError(err, 'read'));
    this.paused = false;
  }

  /** Stops reading (the kernel's receive buffer, then TCP flow control, hold the peer back). */
  pause(): void {
    if (this.paused || this.closing) return;
    this.paused = true;
    this.handle.readStop();
  }

  /** Writes `buf` (kept by the caller unchanged until written); false once `writableLength` is
   *  at or past the high-water mark: the owner's `onDrain` follows when the queue is empty. */
  write(buf: Buffer): boolean {
    if (this.closing || this.ending) return false;
    const b = bindings!;
    const req = spareReq ?? new b.WriteWrap();
    spareReq = undefined;
    req.handle = this.handle;
    req.oncomplete = onWriteComplete;
    const err = this.handle.writeBuffer(req, buf);
    if (err !== 0) {
      // Not reused: the C++ side may have bound it to a write it then disposed of.
      this.fail(uvError(err, 'write'));
      return false;
    }
    if (b.state[b.kLastWriteWasAsync] === 0) {
      spareReq = req;
      return this.writableLength < highWaterMark;
    }
    // The rest is queued in libuv; the request and the bytes stay alive until it completes. The
    // whole buffer counts until then, as a net.Socket's writableLength counts a chunk.
    const queued = buf.length;
    req.bytes = queued;
    req.buffer = buf;
    req[OWNER] = this;
    this.writableLength += queued;
    if (this.writableLength < highWaterMark) return true;
    this.needDrain = true;
    return false;
  }

  /** @internal A queued write completed (or was cancelled by a close). */
  writeDone(bytes: number, status: number): void {
    this.writableLength -= bytes;
    if (this.closing) return;
    if (status < 0) return this.fail(uvError(status, 'write'));
    if (this.writableLength > 0) return;
    if (this.ending) this.sendShutdown();
    else if (this.needDrain) {
      this.needDrain = false;
      this.owner.onDrain();
    }
  }

  /** Sends what is queued, then a FIN; closes once the peer's FIN has come too. */
  end(): void {
    if (this.ending || this.closing) return;
    this.ending = true;
    if (this.writableLength === 0) this.sendShutdown();
  }

  private sendShutdown(): void {
    if (this.shutdownSent || this.closing) return;
    this.shutdownSent = true;
    const req = new bindings!.ShutdownWrap();
    req.handle = this.handle;
    req.oncomplete = onShutdownComplete;
    req[OWNER] = this;
    if (this.handle.shutdown(req) !== 0) this.destroy();
  }

  /** @internal Our FIN is out. */
  shutdownDone(): void {
    if (this.eof) this.destroy();
    // Otherwise keep reading until the peer's FIN (read handlers still get its bytes).
    else if (this.paused) this.resume();
  }

  /** @internal A read returned an error or the end of the stream. */
  readFailed(status: number): void {
    if (status !== UV_EOF) return this.fail(uvError(status, 'read'));
    this.eof = true;
    this.paused = true;
    this.handle.readStop();
    // The peer is done: what is queued goes out, then our side closes too (allowHalfOpen false).
    if (this.shutdownSent && this.writableLength === 0) this.destroy();
    else this.end();
  }

  private fail(err: Error): void {
    if (this.closing) return;
    this.owner.onError(err);
    this.destroy();
  }

  /** Closes the handle now (queued writes are cancelled); `onClosed` follows. */
  destroy(): void {
    if (this.closing) return;
    this.closing = true;
    this.handle.close(onHandleClose);
  }

  /** @internal */
  handleClosed(): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.handle[OWNER] = undefined;
    if (this.server !== undefined) this.server.socketClosed();
    this.owner.onClosed();
  }
}

/** Until an owner takes it, a new socket's events go nowhere. */
const NO_OWNER: RawSocketOwner = {
  onData() {},
  onError() {},
  onDrain() {},
  onClosed() {},
};

export interface RawTcpServerOptions {
  /** Sockets open at once; a connection past it is closed as soon as it is accepted (as
   *  `net.Server.maxConnections`). */
  maxConnections: number;
  /** A new socket (not reading yet: the callback sets its owner, then calls `resume`). */
  onConnection(socket: RawSocket): void;
  /** An accept failed (e.g. EMFILE); the server goes on. */
  onError(err: Error): void;
}

/** A listening TCP handle whose connections are RawSockets. */
export class RawTcpServer {
  private handle: ServerHandle | undefined;
  /** Sockets accepted and not closed yet. */
  count = 0;

  constructor(private readonly opts: RawTcpServerOptions) {}

  /** Binds and listens (a host name is looked up first, as `net.Server.listen` does). */
  async listen(port: number, host: string): Promise<{ port: number; host: string }> {
    const b = load();
    if (b === null) throw new Error(`raw TCP sockets are not available: ${whyNot}`);
    const address = net.isIP(host) !== 0 ? host : (await dns.lookup(host)).address;
    const handle = new b.TCP(b.serverType);
    const where = `${address}:${port}`;
    // bind6 with flags 0: "::" accepts IPv4 too, as net.Server does.
    let err = net.isIPv6(address) ? handle.bind6(address, port, 0) : handle.bind(address, port);
    if (err === 0) err = handle.listen(BACKLOG);
    if (err !== 0) {
      handle.close();
      throw uvError(err, 'listen', where);
    }
    handle.onconnection = (status, client) => this.accepted(status, client);
    this.handle = handle;
    const out: Record<string, unknown> = {};
    handle.getsockname(out);
    return { port: out.port as number, host: out.address as string };
  }

  private accepted(status: number, client: StreamHandle | undefined): void {
    if (status !== 0 || client === undefined) {
      this.opts.onError(uvError(status, 'accept'));
      return;
    }
    if (this.count >= this.opts.maxConnections) {
      client.close();
      return;
    }
    this.count++;
    const sock = new RawSocket(client, NO_OWNER);
    sock.server = this;
    this.opts.onConnection(sock);
  }

  /** @internal One of this server's sockets closed. */
  socketClosed(): void {
    this.count--;
    if (this.count === 0 && this.allClosed !== undefined) this.allClosed();
  }

  private allClosed: (() => void) | undefined;

  /** Stops accepting; open sockets stay. Resolves once every socket is closed too (as
   *  `net.Server.close`), so a node that stops knows its clients are gone. */
  async close(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    this.handle = undefined;
    handle.onconnection = null;
    await new Promise<void>((resolve) => handle.close(resolve));
    if (this.count > 0) await new Promise<void>((resolve) => (this.allClosed = resolve));
  }
}
