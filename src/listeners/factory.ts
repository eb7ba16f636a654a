/**
 * Builds the listener a `listeners[i]` entry describes: `mqtt` (TCP, optional PROXY protocol),
 * `mqtts` (TLS), `ws` / `wss` (WebSocket). The node keeps them behind this one interface.
 */
import type { Logger } from 'pino';
import type { ChannelDeps } from '../channel/channel.js';
import { defaultListenerTls, type ListenerConfig } from '../config/schema.js';
import { TcpListener } from './tcp.js';
import { TlsListener } from './tls.js';
import { WebSocketListener } from './websocket.js';

export interface Listener {
  /** Binds; resolves with the bound address. */
  listen(): Promise<{ port: number; host: string }>;
  /** Stops accepting new connections. */
  stop(): Promise<void>;
  /** TLS listeners: re-read certificate files (throws naming the key when one cannot be read). */
  reload?(): void;
}

export function createListener(l: ListenerConfig, index: number, deps: ChannelDeps, logger: Logger): Listener {
  const where = `listeners[${index}].tls`;
  const tls = l.tls ?? defaultListenerTls();
  switch (l.protocol) {
    case 'mqtts':
      return new TlsListener({ port: l.port, host: l.host, tls, where, maxConnections: l.maxConnections }, deps, logger);
    case 'ws':
    case 'wss':
      return new WebSocketListener(
        { port: l.port, host: l.host, path: l.path ?? '/mqtt', tls: l.protocol === 'wss' ? tls : undefined, where, maxConnections: l.maxConnections },
        deps,
        logger,
      );
    default:
      return new TcpListener(
        { port: l.port, host: l.host, proxyProtocol: l.proxyProtocol, trustedProxies: l.trustedProxies, maxConnections: l.maxConnections, socketLayer: l.socketLayer },
        deps,
        logger,
      );
  }
}

/** Reloads the certificates of every TLS listener; returns one message per failure (the
 *  listener then keeps its previous certificates). */
export function reloadListeners(listeners: readonly Listener[], logger: Logger): string[] {
  const failures: string[] = [];
  for (const l of listeners) {
    if (!l.reload) continue;
    try {
      l.reload();
    } catch (err) {
      const msg = (err as Error).message;
      failures.push(msg);
      logger.error({ err: msg }, 'TLS reload failed; keeping the previous certificates');
    }
  }
  if (failures.length === 0) logger.info('TLS certificates reloaded');
  return failures;
}
