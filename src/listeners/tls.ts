/**
 * TLS: reading a listener's certificate files into secure-context options (at start and on
 * reload), the client-certificate username (Mosquitto `use_identity_as_username` /
 * `use_subject_as_username`), and the `mqtts` listener itself (TLS over TCP, each TLS socket handed
 * to a Connection). `wss` reuses the first two (src/listeners/websocket.ts).
 */
import { readFileSync } from 'node:fs';
import { listenOn } from './listen.js';
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { ChannelDeps } from '../channel/channel.js';
import type { ListenerTlsConfig } from '../config/schema.js';
import { Connection } from '../connection/connection.js';

/** Server options that come from the configuration: what `setSecureContext` takes, plus client
 *  certificate policy (fixed for the listener's life). */
export interface TlsServerOptions extends tls.SecureContextOptions {
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

export class TlsFileError extends Error {
  constructor(
    readonly key: string,
    readonly file: string,
    cause: Error,
  ) {
    super(`${key}: cannot read ${file}: ${cause.message}`);
    this.name = 'TlsFileError';
  }
}

/**
 * Reads the PEM files named by `t` (throws `TlsFileError` naming the key, e.g.
 * `listeners[1].tls.cert`). `where` is the key prefix used in messages.
 */
export function readTlsOptions(t: ListenerTlsConfig, where: string): TlsServerOptions {
  const read = (key: keyof ListenerTlsConfig, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TlsFileError(`${where}.${key}`, file, err as Error);
    }
  };
  const askForCert = t.requireCertificate || t.useIdentityAsUsername || t.useSubjectAsUsername || t.ca !== '';
  const opts: TlsServerOptions = {
    cert: read('cert', t.cert),
    key: read('key', t.key),
    minVersion: t.minVersion,
    // A certificate is asked for when a client CA is configured; it must be valid (chain to `ca`,
    // not revoked) when required, and only a valid one ever yields a username.
    requestCert: askForCert,
    rejectUnauthorized: t.requireCertificate,
  };
  if (t.ca !== '') opts.ca = read('ca', t.ca);
  if (t.crl !== '') opts.crl = read('crl', t.crl);
  return opts;
}

/** The part of the options `server.setSecureContext` takes (files re-read on reload). */
export function secureContextPart(o: TlsServerOptions): tls.SecureContextOptions {
  const { requestCert: _r, rejectUnauthorized: _u, ...ctx } = o;
  return ctx;
}

/**
 * The username a client certificate gives, when the listener is configured for it:
 *   undefined - not configured: the CONNECT username is used;
 *   null      - configured but there is no valid certificate (or no CN): the client is refused;
 *   string    - the CN (`useIdentityAsUsername`) or the RFC 2253 subject (`useSubjectAsUsername`).
 */
export function certificateUsername(socket: tls.TLSSocket, t: ListenerTlsConfig): string | null | undefined {
  if (!t.useIdentityAsUsername && !t.useSubjectAsUsername) return undefined;
  if (!socket.authorized) return null;
  const cert = socket.getPeerX509Certificate();
  if (!cert) return null;
  // X509Certificate.subject lists the RDNs one per line, in certificate order.
  const rdns = cert.subject.split('\n').filter((l) => l.length > 0);
  if (t.useIdentityAsUsername) {
    const cn = rdns.find((r) => r.startsWith('CN='));
    return cn === undefined || cn.length === 3 ? null : cn.slice(3);
  }
  // RFC 2253 writes the last RDN first (`CN=…,OU=…,O=…,C=…`), as Mosquitto's subject does.
  return rdns.length === 0 ? null : [...rdns].reverse().join(',');
}

/**
 * Logs a failed handshake (debug). A refused client certificate destroys the socket without an
 * error of its own (the error is then "socket hang up"); OpenSSL's verdict is in
 * `authorizationError` (e.g. `CERT_REVOKED` for a certificate on the CRL, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`).
 */
export function logHandshakeFailure(logger: Logger, err: Error, socket: net.Socket | tls.TLSSocket): void {
  const certificateError = (socket as Partial<tls.TLSSocket>).authorizationError;
  logger.debug(
    {
      err: err.message,
      ...(certificateError ? { certificateError: String(certificateError) } : {}),
      remote: `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`,
    },
    'TLS handshake failed',
  );
}

export interface TlsListenerOptions {
  port: number;
  host: string;
  tls: ListenerTlsConfig;
  /** Key prefix for messages, e.g. `listeners[1].tls`. */
  where: string;
  /** Connections at once; 0 = the node's limit. */
  maxConnections?: number;
}

/** `mqtts`: MQTT over TLS over TCP. */
export class TlsListener {
  private server: tls.Server | undefined;
  readonly connections = new Set<Connection>();

  constructor(
    private readonly opts: TlsListenerOptions,
    private readonly deps: ChannelDeps,
    private readonly logger: Logger,
  ) {}

  async listen(): Promise<{ port: number; host: string }> {
    const options = readTlsOptions(this.opts.tls, this.opts.where);
    const server = tls.createServer({
      ...options,
      // Handshake time counts against the connect timeout.
      handshakeTimeout: this.deps.broker.options.connectTimeoutMs,
    });
    server.on('secureConnection', (socket) => {
      socket.setNoDelay(true);
      const conn = new Connection(socket, this.deps, this.logger, undefined, certificateUsername(socket, this.opts.tls));
      conn.trackIn(this.connections);
    });
    server.on('tlsClientError', (err, socket: net.Socket | tls.TLSSocket) => logHandshakeFailure(this.logger, err, socket));
    server.maxConnections = this.opts.maxConnections || this.deps.broker.options.maxConnections + 100;
    this.server = server;
    return listenOn(server, this.opts.port, this.opts.host, this.logger);
  }

  /** Re-reads the certificate files; new handshakes use them, open connections keep theirs.
   *  Throws (`TlsFileError`) and keeps the old ones when a file cannot be read. */
  reload(): void {
    if (!this.server) return;
    this.server.setSecureContext(secureContextPart(readTlsOptions(this.opts.tls, this.opts.where)));
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
