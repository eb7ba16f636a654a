/**
 * Plain TCP listener: accepts sockets and hands each to a new Connection. With `proxyProtocol`
 * the first bytes of a connection from a trusted proxy must be a PROXY v1/v2 header (read here,
 * bounded in size and time); the Connection then gets the client's real address. A peer outside
 * `trustedProxies` that sends a PROXY header, or a trusted one that does not, is closed.
 *
 * Two socket layers, one behaviour: `handle` (the default) accepts on Node's libuv handles
 * directly (src/connection/raw-tcp.ts: no net.Socket per connection, about twice the connects per
 * second); `net` uses net.Server. `handle` falls back to `net` by itself, with a warning, on a
 * runtime that lacks the bindings it needs.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { listenOn } from './listen.js';
import type { Logger } from 'pino';
import type { ChannelDeps } from '../channel/channel.js';
import type { SocketLayer } from '../config/schema.js';
import { Connection } from '../connection/connection.js';
import { RawSocket, RawTcpServer, rawTcpSupported, rawTcpUnsupportedReason } from '../connection/raw-tcp.js';
import {
  looksLikeProxyHeader,
  parseProxyHeader,
  PROXY_HEADER_TIMEOUT_MS,
  trustMatcher,
  V2_MAX_LENGTH,
} from './proxy-protocol.js';

export interface TcpListenerOptions {
  port: number;
  host: string;
  /** Expect a PROXY protocol header from trusted peers. */
  proxyProtocol?: boolean;
  /** Comma list of addresses/CIDRs allowed to send PROXY headers; empty = every peer. */
  trustedProxies?: string;
  /** Time a trusted peer has to send its whole PROXY header. */
  proxyHeaderTimeoutMs?: number;
  /** Connections at once; 0 = the node's limit. */
  maxConnections?: number;
  /** Which sockets to accept with (see the file comment); default `handle`. */
  socketLayer?: SocketLayer;
}

/** Where a PROXY preamble stands after the bytes read so far. */
type PreambleStep =
  | { kind: 'more' }
  | { kind: 'reject'; why: string }
  /** `real`: the client's `host:port` from the header (none: use the socket's peer). */
  | { kind: 'done'; real?: string; rest: Buffer; version?: 1 | 2; command?: string };

/** One step of reading the preamble: `buf` is every byte read so far. Pure. */
function preambleStep(buf: Buffer, trusted: boolean): PreambleStep {
  if (!trusted) {
    if (looksLikeProxyHeader(buf.subarray(0, 1))) return { kind: 'reject', why: 'PROXY header from an untrusted peer' };
    return { kind: 'done', rest: buf };
  }
  const r = parseProxyHeader(buf.length > V2_MAX_LENGTH ? buf.subarray(0, V2_MAX_LENGTH) : buf);
  if (r.kind === 'incomplete') return { kind: 'more' };
  if (r.kind === 'invalid') return { kind: 'reject', why: r.reason };
  const h = r.header;
  const real = h.command === 'PROXY' && h.source ? `${h.source.address}:${h.source.port}` : undefined;
  return { kind: 'done', real, rest: buf.subarray(r.length), version: h.version, command: h.command };
}

export class TcpListener {
  private server: net.Server | undefined;
  private raw: RawTcpServer | undefined;
  readonly connections = new Set<Connection>();
  private readonly trusted: (address: string) => boolean;
  /** The layer in use once listening. */
  layer: SocketLayer = 'net';

  constructor(
    private readonly opts: TcpListenerOptions,
    private readonly deps: ChannelDeps,
    private readonly logger: Logger,
  ) {
    this.trusted = trustMatcher(opts.trustedProxies ?? '');
  }

  private get maxConnections(): number {
    return this.opts.maxConnections || this.deps.broker.options.maxConnections + 100;
  }

  async listen(): Promise<{ port: number; host: string }> {
    if ((this.opts.socketLayer ?? 'handle') === 'handle') {
      if (rawTcpSupported()) return this.listenRaw();
      this.logger.warn({ why: rawTcpUnsupportedReason() }, 'socketLayer "handle" is not available on this runtime; using net.Server');
    }
    const server = net.createServer({ noDelay: true }, (socket) => {
      if (this.opts.proxyProtocol) this.readPreamble(socket);
      else this.attach(socket);
    });
    server.maxConnections = this.maxConnections;
    this.server = server;
    this.layer = 'net';
    return listenOn(server, this.opts.port, this.opts.host, this.logger);
  }

  private async listenRaw(): Promise<{ port: number; host: string }> {
    const raw = new RawTcpServer({
      maxConnections: this.maxConnections,
      onConnection: (socket) => {
        if (this.opts.proxyProtocol) this.readRawPreamble(socket);
        else this.attach(socket);
      },
      onError: (err) => this.logger.error({ err }, 'listener error'),
    });
    const bound = await raw.listen(this.opts.port, this.opts.host);
    this.raw = raw;
    this.layer = 'handle';
    return bound;
  }

  private attach(socket: net.Socket | RawSocket, remoteAddress?: string, rest?: Buffer): void {
    const conn = new Connection(socket, this.deps, this.logger, remoteAddress);
    conn.trackIn(this.connections);
    if (rest && rest.length > 0) {
      // What followed the PROXY header: a direct-read connection takes it straight (nothing reads
      // the socket's Readable buffer any more), a stream one through the stream.
      if (conn.directRead) conn.onData(rest);
      else (socket as net.Socket).unshift(rest);
    }
    socket.resume();
  }

  /**
   * Reads the PROXY header (trusted peers) or checks there is none (others), then attaches; the
   * same for both socket layers. The caller feeds the socket's bytes to `onData` and calls `stop`
   * when the socket fails or closes first; `release` unhooks the caller's feed.
   */
  private preambleReader(socket: net.Socket | RawSocket, release: () => void): { onData(chunk: Buffer, start?: number, end?: number): void; stop(): void } {
    const peer = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
    const trusted = socket.remoteAddress !== undefined && this.trusted(socket.remoteAddress);
    let buf: Buffer = Buffer.alloc(0);
    const stop = (): void => {
      clearTimeout(timer);
      release();
    };
    const reject = (why: string): void => {
      stop();
      this.logger.warn({ remote: peer, why }, 'connection refused: PROXY protocol');
      socket.destroy();
    };
    const timer = setTimeout(() => reject('no complete PROXY header in time'), this.opts.proxyHeaderTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS);
    timer.unref();
    const onData = (chunk: Buffer, start = 0, end = chunk.length): void => {
      // Kept as a view: nothing writes into a read slab's used bytes (raw-tcp.ts never lends to
      // this reader).
      const part = chunk.subarray(start, end);
      buf = buf.length === 0 ? part : Buffer.concat([buf, part]);
      const step = preambleStep(buf, trusted);
      if (step.kind === 'more') return;
      if (step.kind === 'reject') return reject(step.why);
      stop();
      socket.pause();
      if (step.version !== undefined) {
        this.logger.debug({ proxy: peer, remote: step.real ?? peer, version: step.version, command: step.command }, 'PROXY header');
      }
      this.attach(socket, step.real, step.rest);
    };
    return { onData, stop };
  }

  /** A net.Socket's preamble: read through its events. */
  private readPreamble(socket: net.Socket): void {
    const reader = this.preambleReader(socket, () => {
      socket.off('data', reader.onData);
      socket.off('error', reader.stop);
      socket.off('close', reader.stop);
    });
    socket.on('data', reader.onData);
    socket.on('error', reader.stop);
    socket.on('close', reader.stop);
  }

  /** A RawSocket's preamble: the reader owns the socket until the Connection takes it. */
  private readRawPreamble(socket: RawSocket): void {
    const reader = this.preambleReader(socket, () => undefined);
    socket.owner = { onData: reader.onData, onError: reader.stop, onDrain: () => undefined, onClosed: reader.stop };
    socket.resume();
  }

  /** Stops accepting new connections. */
  async stop(): Promise<void> {
    const server = this.server;
    const raw = this.raw;
    this.server = undefined;
    this.raw = undefined;
    if (raw) await raw.close();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
