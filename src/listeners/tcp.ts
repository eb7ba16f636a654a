/** Plain TCP listener: accepts sockets and hands each to a new Connection. */
import net from 'node:net';
import type { Logger } from 'pino';
import type { ChannelDeps } from '../channel/channel.js';
import { Connection } from '../connection/connection.js';

export interface TcpListenerOptions {
  port: number;
  host: string;
}

export class TcpListener {
  private server: net.Server | undefined;
  readonly connections = new Set<Connection>();

  constructor(
    private readonly opts: TcpListenerOptions,
    private readonly deps: ChannelDeps,
    private readonly logger: Logger,
  ) {}

  async listen(): Promise<{ port: number; host: string }> {
    const server = net.createServer({ noDelay: true }, (socket) => {
      const conn = new Connection(socket, this.deps, this.logger);
      this.connections.add(conn);
      socket.once('close', () => this.connections.delete(conn));
    });
    server.maxConnections = this.deps.broker.options.maxConnections + 100;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ err }, 'listener error'));
    const addr = server.address() as net.AddressInfo;
    return { port: addr.port, host: addr.address };
  }

  /** Stops accepting new connections. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
