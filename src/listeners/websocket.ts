/**
 * MQTT over WebSocket (`ws`) and over secure WebSocket (`wss`): an HTTP(S) server whose upgrade
 * requests on `path` become WebSockets (package `ws`), each wrapped as a Duplex stream
 * (`createWebSocketStream`) and handed to a Connection like a TCP socket. The subprotocol is
 * `mqtt` (MQTT 3.1.1 and 5.0), or `mqttv3.1` (old clients); a client offering neither is
 * refused. One WebSocket message may carry any number of MQTT packets (and a packet may span
 * messages): the stream is bytes, as on TCP. A message larger than `limits.maxPacketSize` (plus
 * a little framing slack) closes the WebSocket (1009).
 */
import http from 'node:http';
import { listenOn } from './listen.js';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type { ChannelDeps } from '../channel/channel.js';
import type { ListenerTlsConfig } from '../config/schema.js';
import { Connection } from '../connection/connection.js';
import { certificateUsername, logHandshakeFailure, readTlsOptions, secureContextPart } from './tls.js';

/** Subprotocols accepted, in order of preference. */
export const WS_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const;

/** Chooses the subprotocol (ws `handleProtocols`): `mqtt`, else `mqttv3.1`, else refuse. */
export function chooseSubprotocol(offered: Set<string>): string | false {
  for (const p of WS_SUBPROTOCOLS) if (offered.has(p)) return p;
  return false;
}

export interface WebSocketListenerOptions {
  port: number;
  host: string;
  /** Path of the endpoint; '' = any. */
  path: string;
  /** Set for `wss`. */
  tls?: ListenerTlsConfig;
  /** Key prefix for messages, e.g. `listeners[2].tls`. */
  where: string;
  maxConnections?: number;
}

export class WebSocketListener {
  private server: http.Server | https.Server | undefined;
  private wss: WebSocketServer | undefined;
  readonly connections = new Set<Connection>();

  constructor(
    private readonly opts: WebSocketListenerOptions,
    private readonly deps: ChannelDeps,
    private readonly logger: Logger,
  ) {}

  async listen(): Promise<{ port: number; host: string }> {
    const tlsCfg = this.opts.tls;
    const server = tlsCfg
      ? https.createServer({ ...readTlsOptions(tlsCfg, this.opts.where), handshakeTimeout: this.deps.broker.options.connectTimeoutMs })
      : http.createServer();
    // Slack for a few MQTT packets' framing on top of the largest packet.
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.deps.broker.options.maxPacketSize + 1024,
      perMessageDeflate: false,
      // The subprotocol list is checked before the upgrade completes (a client offering none is
      // accepted, as Mosquitto does: some old clients send no header).
      handleProtocols: (offered) => chooseSubprotocol(offered),
    });
    server.on('request', (req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'close' });
      res.end('MQTT over WebSocket: upgrade required\n');
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (this.opts.path !== '' && path !== this.opts.path) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      const offered = req.headers['sec-websocket-protocol'];
      if (offered !== undefined) {
        const set = new Set(offered.split(',').map((s) => s.trim()));
        if (chooseSubprotocol(set) === false) {
          socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
          this.logger.debug({ offered }, 'WebSocket refused: no MQTT subprotocol');
          return;
        }
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, req));
    });
    if (tlsCfg) {
      server.on('tlsClientError', (err: Error, socket: net.Socket | tls.TLSSocket) => logHandshakeFailure(this.logger, err, socket));
    }
    server.maxConnections = this.opts.maxConnections || this.deps.broker.options.maxConnections + 100;
    server.headersTimeout = Math.min(server.headersTimeout, this.deps.broker.options.connectTimeoutMs);
    this.server = server;
    this.wss = wss;
    return listenOn(server, this.opts.port, this.opts.host, this.logger);
  }

  private attach(ws: WebSocket, req: http.IncomingMessage): void {
    const raw = req.socket;
    const remote = `${raw.remoteAddress ?? 'unknown'}:${raw.remotePort ?? 0}`;
    const username = this.opts.tls ? certificateUsername(raw as tls.TLSSocket, this.opts.tls) : undefined;
    const stream = createWebSocketStream(ws);
    (raw as net.Socket).setNoDelay?.(true);
    const conn = new Connection(stream, this.deps, this.logger, remote, username);
    conn.trackIn(this.connections);
  }

  /** `wss`: re-reads the certificate files (see TlsListener.reload). */
  reload(): void {
    if (!this.server || !this.opts.tls) return;
    (this.server as https.Server).setSecureContext(secureContextPart(readTlsOptions(this.opts.tls, this.opts.where)));
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.wss?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
