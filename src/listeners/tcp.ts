/**
 * Plain TCP listener: accepts sockets and hands each to a new Connection. With `proxyProtocol`
 * the first bytes of a connection from a trusted proxy must be a PROXY v1/v2 header (read here,
 * bounded in size and time); the Connection then gets the client's real address. A peer outside
 * `trustedProxies` that sends a PROXY header, or a trusted one that does not, is closed.
 */
import net from 'node:net';
import { listenOn } from './listen.js';
import type { Logger } from 'pino';
import type { ChannelDeps } from '../channel/channel.js';
import { Connection } from '../connection/connection.js';
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
}

export class TcpListener {
  private server: net.Server | undefined;
  readonly connections = new Set<Connection>();
  private readonly trusted: (address: string) => boolean;

  constructor(
    private readonly opts: TcpListenerOptions,
    private readonly deps: ChannelDeps,
    private readonly logger: Logger,
  ) {
    this.trusted = trustMatcher(opts.trustedProxies ?? '');
  }

  async listen(): Promise<{ port: number; host: string }> {
    const server = net.createServer({ noDelay: true }, (socket) => {
      if (this.opts.proxyProtocol) this.readPreamble(socket);
      else this.attach(socket);
    });
    server.maxConnections = this.opts.maxConnections || this.deps.broker.options.maxConnections + 100;
    this.server = server;
    return listenOn(server, this.opts.port, this.opts.host, this.logger);
  }

  private attach(socket: net.Socket, remoteAddress?: string, rest?: Buffer): void {
    const conn = new Connection(socket, this.deps, this.logger, remoteAddress);
    conn.trackIn(this.connections);
    if (rest && rest.length > 0) {
      // What followed the PROXY header: a direct-read connection takes it straight (nothing reads
      // the socket's Readable buffer any more), a stream one through the stream.
      if (conn.directRead) conn.onData(rest);
      else socket.unshift(rest);
    }
    socket.resume();
  }

  /** Reads the PROXY header (trusted peers) or checks there is none (others), then attaches. */
  private readPreamble(socket: net.Socket): void {
    const peer = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
    const trusted = socket.remoteAddress !== undefined && this.trusted(socket.remoteAddress);
    let buf: Buffer = Buffer.alloc(0);
    const reject = (why: string): void => {
      cleanup();
      this.logger.warn({ remote: peer, why }, 'connection refused: PROXY protocol');
      socket.destroy();
    };
    const timer = setTimeout(() => reject('no complete PROXY header in time'), this.opts.proxyHeaderTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS);
    timer.unref();
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const onError = (): void => cleanup();
    const onClose = (): void => cleanup();
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (!trusted) {
        if (looksLikeProxyHeader(buf.subarray(0, 1))) return reject('PROXY header from an untrusted peer');
        cleanup();
        socket.pause();
        return this.attach(socket, undefined, buf);
      }
      const r = parseProxyHeader(buf.length > V2_MAX_LENGTH ? buf.subarray(0, V2_MAX_LENGTH) : buf);
      if (r.kind === 'incomplete') return;
      if (r.kind === 'invalid') return reject(r.reason);
      cleanup();
      socket.pause();
      const h = r.header;
      const real = h.command === 'PROXY' && h.source ? `${h.source.address}:${h.source.port}` : undefined;
      this.logger.debug({ proxy: peer, remote: real ?? peer, version: h.version, command: h.command }, 'PROXY header');
      this.attach(socket, real, buf.subarray(r.length));
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** Stops accepting new connections. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
