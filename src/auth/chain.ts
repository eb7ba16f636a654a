/**
 * The configured authentication and authorization as one `Authorizer` (built by node.ts from the
 * `auth.*` config; `extras.authorizer` still overrides it in tests). With dynamic security
 * configured too, dynsec is asked first and this chain decides what it defers
 * (dynsec/chained.ts, using `decideAcl` and `hasAuthenticators`).
 *
 * CONNECT (first answer wins):
 *   0. A user name taken from a verified TLS client certificate (`certificateUsername`) is in.
 *   1. No authenticator configured (no password file, JWT or HTTP hook): everyone is let in from
 *      loopback; from elsewhere only with `auth.allowAnonymous` (Mosquitto 2 without listeners),
 *      otherwise 0x87 Not authorized (3.1.1: 5).
 *   2. No user name and no password: anonymous; allowed with `auth.allowAnonymous`, else 0x87 / 5.
 *   3. Password file: a user found there is decided by it (wrong password 0x86 / 4).
 *   4. JWT: a password shaped like a JWT is verified (invalid, expired: 0x86 / 4).
 *   5. HTTP hook: allow, deny (0x86 / 4), or unreachable / timeout (0x88 / 3).
 *   6. Nobody knew the client: 0x86 / 4.
 *
 * PUBLISH (write), SUBSCRIBE (read, the whole filter must be covered), delivery (read): the
 * sources are the ACL file (when configured) and the client's own rules (JWT `aclClaim`, HTTP
 * `acl`). A superuser (HTTP) passes every check. Otherwise any deny refuses, then any grant allows,
 * then: refused if an ACL file is configured or the client has rules of its own, else allowed.
 */
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import { RC } from '../codec/reason-codes.js';
import type { SkeinConfig } from '../config/schema.js';
import { AclFile, checkRules, READ, WRITE, type AclDecision, type Rule } from './acl-file.js';
import { hostOf, HttpAuthenticator } from './http-auth.js';
import { JwtAuthenticator, looksLikeJwt } from './jwt.js';
import { PasswordFile } from './password-file.js';
import type { AuthResult, Authorizer, ClientIdentity, ConnectCredentials } from './types.js';

/** An authorizer whose files can be read again (SIGHUP). */
export interface ReloadableAuthorizer extends Authorizer {
  reload(): Promise<void>;
}

export function isReloadable(a: Authorizer): a is ReloadableAuthorizer {
  return typeof (a as Partial<ReloadableAuthorizer>).reload === 'function';
}

export interface ChainOptions {
  allowAnonymous: boolean;
  passwordFile?: PasswordFile;
  aclFile?: AclFile;
  jwt?: JwtAuthenticator;
  http?: HttpAuthenticator;
  logger: Logger;
}

/** What authentication left for the authorization checks of one client. */
interface ClientContext {
  username: string | undefined;
  superuser: boolean;
  acl?: Rule[];
  at: number;
}

const OK: AuthResult = { reasonCode: RC.Success };

type Decided = { result: AuthResult; context?: Omit<ClientContext, 'at'> };

export class ChainAuthorizer implements ReloadableAuthorizer {
  /** Per client id; only clients with rules of their own or superusers have one. */
  private readonly contexts = new Map<string, ClientContext>();
  private pruneAt = 1024;
  /** Whether a client id is connected here (set by node.ts); lets stale contexts be dropped. */
  isConnected: (clientId: string) => boolean = () => true;

  constructor(readonly opts: ChainOptions) {}

  get hasAuthenticators(): boolean {
    return this.opts.passwordFile !== undefined || this.opts.jwt !== undefined || this.opts.http !== undefined;
  }

  /** Re-reads the password file, the ACL file and the JWT public key; a file that cannot be read
   *  keeps its previous contents (logged). Cached HTTP answers are dropped. */
  async reload(): Promise<void> {
    const { passwordFile, aclFile, jwt, http, logger } = this.opts;
    if (passwordFile) await loadLogged(logger, 'password file', passwordFile.path, () => passwordFile.load(), false);
    if (aclFile) await loadLogged(logger, 'acl file', aclFile.path, () => aclFile.load(), false);
    if (jwt) await loadLogged(logger, 'jwt public key', '', async () => (await jwt.load(), []), false);
    http?.clearCache();
  }

  /** Synchronous when no lookup is needed (anonymous, certificate user name): the connect path
   *  then does not wait a turn. */
  authenticate(creds: ConnectCredentials): AuthResult | Promise<AuthResult> {
    const quick = this.decideWithoutLookup(creds);
    if (quick !== undefined) return this.settle(creds, quick);
    return this.decide(creds).then((r) => this.settle(creds, r));
  }

  private settle(creds: ConnectCredentials, r: Decided): AuthResult {
    if (r.result.reasonCode === RC.Success) this.setContext(creds, r.context);
    else this.opts.logger.debug({ clientId: creds.clientId, username: creds.username, remote: creds.remoteAddress, reason: r.result.reasonString }, 'authentication failed');
    return r.result;
  }

  /** The decisions that need no password file, token or HTTP call; undefined = those are needed. */
  private decideWithoutLookup(creds: ConnectCredentials): Decided | undefined {
    const o = this.opts;
    if (!this.hasAuthenticators) {
      if (o.allowAnonymous || isLoopback(creds.remoteAddress)) return { result: OK };
      return { result: { reasonCode: RC.NotAuthorized, reasonString: 'anonymous access is only allowed from loopback (auth.allowAnonymous)' } };
    }
    // The TLS layer verified the certificate the user name comes from (Mosquitto does not use the
    // password file on such listeners either).
    if (creds.certificateUsername && creds.username !== undefined) return { result: OK };
    if (creds.username === undefined && creds.password === undefined) {
      if (o.allowAnonymous) return { result: OK };
      return { result: { reasonCode: RC.NotAuthorized, reasonString: 'anonymous access not allowed' } };
    }
    return undefined;
  }

  private async decide(creds: ConnectCredentials): Promise<Decided> {
    const o = this.opts;
    if (o.passwordFile && creds.username !== undefined) {
      const r = await o.passwordFile.check(creds.username, creds.password);
      if (r === 'ok') return { result: OK };
      if (r === 'bad') return { result: badCredentials('wrong password') };
    }
    if (o.jwt && looksLikeJwt(creds.password)) {
      const r = await o.jwt.verify(creds);
      if (!r.ok) return { result: badCredentials(r.reason) };
      return { result: OK, context: r.acl ? { username: creds.username, superuser: false, acl: r.acl } : undefined };
    }
    if (o.http) {
      const r = await o.http.check(creds);
      if (r.kind === 'error') {
        o.logger.warn({ reason: r.reason }, 'http authentication unavailable');
        return { result: { reasonCode: RC.ServerUnavailable, reasonString: 'authentication service unavailable' } };
      }
      if (r.kind === 'deny') return { result: badCredentials(r.reason) };
      return { result: OK, context: r.superuser || r.acl ? { username: creds.username, superuser: r.superuser, acl: r.acl } : undefined };
    }
    return { result: badCredentials('unknown user') };
  }

  private setContext(creds: ConnectCredentials, context: Omit<ClientContext, 'at'> | undefined): void {
    if (!context) {
      this.contexts.delete(creds.clientId);
      return;
    }
    this.contexts.set(creds.clientId, { ...context, at: Date.now() });
    if (this.contexts.size >= this.pruneAt) {
      // Drop contexts of clients gone for a while (there is no disconnect hook).
      const old = Date.now() - 120_000;
      for (const [id, c] of this.contexts) if (c.at < old && !this.isConnected(id)) this.contexts.delete(id);
      this.pruneAt = Math.max(1024, this.contexts.size * 2);
    }
  }

  /** Forgets what authentication left for a client id (another authorizer admitted it). */
  forget(clientId: string): void {
    this.contexts.delete(clientId);
  }

  /**
   * The ACL sources' answer: a superuser or a grant 'allow', a deny rule 'deny', 'nomatch' when no
   * source has a rule for it (or none is configured). For whoever composes authorizers
   * (src/auth/dynsec/chained.ts); the `authorize*` methods below apply the fallback.
   */
  decideAcl(client: ClientIdentity, topic: string, access: typeof READ | typeof WRITE, subscribe: boolean): AclDecision {
    const c = this.contexts.get(client.clientId);
    const ctx = c && c.username === client.username ? c : undefined;
    if (ctx?.superuser) return 'allow';
    const file: AclDecision = this.opts.aclFile ? this.opts.aclFile.check(client, topic, access, subscribe) : 'nomatch';
    const own: AclDecision = ctx?.acl ? checkRules(ctx.acl, topic, access, subscribe) : 'nomatch';
    if (file === 'deny' || own === 'deny') return 'deny';
    if (file === 'allow' || own === 'allow') return 'allow';
    return 'nomatch';
  }

  private check(client: ClientIdentity, topic: string, access: typeof READ | typeof WRITE, subscribe: boolean): boolean {
    const d = this.decideAcl(client, topic, access, subscribe);
    if (d !== 'nomatch') return d === 'allow';
    // No rule anywhere: refused if an ACL file is configured or the client has rules of its own.
    const c = this.contexts.get(client.clientId);
    const ctx = c && c.username === client.username ? c : undefined;
    return this.opts.aclFile === undefined && ctx?.acl === undefined;
  }

  authorizePublish(client: ClientIdentity, topic: string): boolean {
    return this.check(client, topic, WRITE, false);
  }

  authorizeSubscribe(client: ClientIdentity, filter: string): boolean {
    return this.check(client, filter, READ, true);
  }

  authorizeDelivery(client: ClientIdentity, topic: string): boolean {
    return this.check(client, topic, READ, false);
  }
}

function badCredentials(reasonString: string): AuthResult {
  return { reasonCode: RC.BadUserNameOrPassword, reasonString };
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; the argument is `ip:port`. */
export function isLoopback(remoteAddress: string): boolean {
  let host = hostOf(remoteAddress);
  if (host.toLowerCase().startsWith('::ffff:')) host = host.slice(7);
  const kind = isIP(host);
  if (kind === 4) return host.startsWith('127.');
  if (kind === 6) return new URL(`http://[${host}]/`).hostname === '[::1]';
  return false;
}

async function loadLogged(
  logger: Logger,
  what: string,
  path: string,
  load: () => Promise<Array<{ line: number; problem: string }>>,
  fatal: boolean,
): Promise<void> {
  let issues;
  try {
    issues = await load();
  } catch (err) {
    if (fatal) throw new Error(`cannot read ${what} ${path}: ${(err as Error).message}`);
    logger.error({ err, path }, `cannot read ${what}; keeping the previous one`);
    return;
  }
  for (const i of issues) logger.warn({ path, line: i.line }, `${what} ${path}:${i.line}: ${i.problem} (line skipped)`);
}

/** Whether `config.auth` configures any source of the chain (password file, ACL file, JWT, HTTP hook). */
export function hasChainSources(config: SkeinConfig): boolean {
  const a = config.auth;
  return a.passwordFile !== '' || a.aclFile !== '' || a.jwt.secret !== '' || a.jwt.publicKey !== '' || a.http.url !== '';
}

/** Builds the authorizer of `config.auth`; throws when a configured file cannot be read. */
export async function createAuthorizer(config: SkeinConfig, logger: Logger): Promise<ChainAuthorizer> {
  const a = config.auth;
  const passwordFile = a.passwordFile ? new PasswordFile(a.passwordFile) : undefined;
  const aclFile = a.aclFile ? new AclFile(a.aclFile) : undefined;
  const jwt =
    a.jwt.secret || a.jwt.publicKey
      ? new JwtAuthenticator({
          secret: a.jwt.secret || undefined,
          publicKeyFile: a.jwt.publicKey || undefined,
          usernameClaim: a.jwt.usernameClaim,
          clientIdClaim: a.jwt.clientIdClaim,
          aclClaim: a.jwt.aclClaim,
        })
      : undefined;
  const http = a.http.url
    ? new HttpAuthenticator({ url: a.http.url, timeoutMs: a.http.timeoutMs, cacheTtlMs: a.http.cacheTtlMs, cacheSize: a.http.cacheSize })
    : undefined;
  if (passwordFile) await loadLogged(logger, 'password file', passwordFile.path, () => passwordFile.load(), true);
  if (aclFile) await loadLogged(logger, 'acl file', aclFile.path, () => aclFile.load(), true);
  if (jwt) await loadLogged(logger, 'jwt public key', a.jwt.publicKey, async () => (await jwt.load(), []), true);
  return new ChainAuthorizer({ allowAnonymous: a.allowAnonymous, passwordFile, aclFile, jwt, http, logger });
}

/**
 * After a reload: checks every subscription of every connected client again and removes those
 * now refused (as Mosquitto does on SIGHUP). Returns how many were removed.
 */
export async function recheckSubscriptions(broker: Broker, authorizer: Authorizer, logger: Logger): Promise<number> {
  let removed = 0;
  const stored: Promise<void>[] = [];
  for (const [clientId, session] of broker.sessions) {
    const target = broker.targets.get(clientId);
    if (!target) continue;
    const denied = [...session.subscriptionsView.keys()].filter((f) => !authorizer.authorizeSubscribe(target.identity, f));
    if (denied.length === 0) continue;
    logger.info({ clientId, filters: denied }, 'subscriptions removed: no longer authorized');
    stored.push(broker.unsubscribe(session, denied).stored);
    removed += denied.length;
  }
  const results = await Promise.allSettled(stored);
  for (const r of results) if (r.status === 'rejected') logger.warn({ err: r.reason as unknown }, 'storing a removed subscription failed');
  return removed;
}
