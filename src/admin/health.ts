/**
 * The per-node HTTP health endpoint (node:http, no framework), for load balancers and orchestrators:
 *
 *   GET  /live      200 while the process runs (Kubernetes liveness)
 *   GET  /ready     200 when the node accepts MQTT connections; 503 when draining or cut off from
 *                   Redis (Kubernetes readiness, generic load balancers)
 *   GET  /ready/lb  like /ready, but 404 while draining: HAProxy's `http-check disable-on-404`
 *                   then stops sending new connections without cutting the existing ones (which
 *                   `on-marked-down shutdown-sessions` would do on a 503), so the node moves its
 *                   clients away at its own bounded rate
 *   POST /drain     starts a graceful drain and shutdown (as SIGTERM); from loopback only
 *
 * Bodies are small JSON objects. HEAD is answered like GET.
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';
import { listenOn } from '../listeners/listen.js';
import type { Logger } from 'pino';
import { normalizeAddress } from '../listeners/proxy-protocol.js';

export type Readiness = 'ready' | 'draining' | 'unavailable';

export interface HealthHandlers {
  readiness(): Readiness;
  /** Starts the drain; the returned promise is not awaited by the endpoint. */
  drain(): void;
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = normalizeAddress(address);
  return a === '::1' || /^127\./.test(a);
}

export class HealthServer {
  private server: http.Server | undefined;

  constructor(
    private readonly opts: { port: number; host: string },
    private readonly handlers: HealthHandlers,
    private readonly logger: Logger,
  ) {}

  async listen(): Promise<{ port: number; host: string }> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5000;
    server.headersTimeout = 5000;
    server.requestTimeout = 5000;
    this.server = server;
    return listenOn(server, this.opts.port, this.opts.host, this.logger, 'health endpoint');
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const reply = (status: number, body: Record<string, unknown>): void => {
      const text = JSON.stringify(body) + '\n';
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
    };
    req.resume(); // bodies are ignored
    if (path === '/live') {
      if (method !== 'GET') return reply(405, { error: 'method not allowed' });
      return reply(200, { status: 'live' });
    }
    if (path === '/ready' || path === '/ready/lb') {
      if (method !== 'GET') return reply(405, { error: 'method not allowed' });
      const r = this.handlers.readiness();
      const status = r === 'ready' ? 200 : r === 'draining' && path === '/ready/lb' ? 404 : 503;
      return reply(status, { status: r });
    }
    if (path === '/drain') {
      if (method !== 'POST') return reply(405, { error: 'use POST' });
      if (!isLoopback(req.socket.remoteAddress)) return reply(403, { error: 'drain is allowed from loopback only' });
      this.logger.info({ from: req.socket.remoteAddress }, 'drain requested over HTTP');
      this.handlers.drain();
      return reply(202, { status: 'draining' });
    }
    return reply(404, { error: 'not found' });
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
