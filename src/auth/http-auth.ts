/**
 * HTTP authentication hook: one POST per CONNECT (answers cached for a while).
 *
 *   POST <url>   Content-Type: application/json
 *   {"clientId": "...", "username": "..." | null, "password": "..." | null, "remoteAddress": "ip:port"}
 *
 * `200` with `{"result": "allow"}` allows; the body may add `"superuser": true` (or EMQX's
 * `"is_superuser"`: every check passes) and `"acl": [{"permission": "allow"|"deny", "action":
 * "publish"|"subscribe"|"all", "topic": "filter"}, ...]` (EMQX's HTTP authn response; `%c`/`%u`
 * and `${clientid}`/`${username}` levels are replaced). Any other answer denies (0x86 / 4); a
 * timeout or connection error refuses with 0x88 Server unavailable (3.1.1: 3) and is not cached.
 */
import { createHash } from 'node:crypto';
import { READ, WRITE, type Rule } from './acl-file.js';
import { substitute } from './topic-match.js';
import type { ConnectCredentials } from './types.js';
import { validateTopicFilter } from '../topics/validate.js';

export interface HttpAuthOptions {
  url: string;
  timeoutMs: number;
  /** 0 = no cache. */
  cacheTtlMs: number;
  cacheSize: number;
}

export type HttpAuthResult =
  | { kind: 'allow'; superuser: boolean; acl?: Rule[] }
  | { kind: 'deny'; reason: string }
  | { kind: 'error'; reason: string };

type Cached = { kind: 'allow'; superuser: boolean; acl?: unknown } | { kind: 'deny'; reason: string };

export class HttpAuthenticator {
  /** LRU: a Map keeps insertion order; a hit moves the entry to the end. */
  private readonly cache = new Map<string, { expires: number; value: Cached }>();
  requests = 0;

  constructor(private readonly opts: HttpAuthOptions) {}

  get cacheEntries(): number {
    return this.cache.size;
  }

  clearCache(): void {
    this.cache.clear();
  }

  async check(creds: ConnectCredentials): Promise<HttpAuthResult> {
    const ip = hostOf(creds.remoteAddress);
    const key = createHash('sha256')
      .update(JSON.stringify([creds.clientId, creds.username ?? null, creds.password?.toString('base64') ?? null, ip]))
      .digest('base64');
    const now = Date.now();
    let value: Cached | undefined;
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      value = hit.value;
    } else {
      if (hit) this.cache.delete(key);
      const fetched = await this.request(creds);
      if (fetched.kind === 'error') return fetched;
      value = fetched;
      if (this.opts.cacheTtlMs > 0 && this.opts.cacheSize > 0) {
        this.cache.set(key, { expires: now + this.opts.cacheTtlMs, value });
        while (this.cache.size > this.opts.cacheSize) this.cache.delete(this.cache.keys().next().value!);
      }
    }
    if (value.kind === 'deny') return value;
    return { kind: 'allow', superuser: value.superuser, acl: value.acl === undefined ? undefined : aclFromList(value.acl, creds.clientId, creds.username) };
  }

  private async request(creds: ConnectCredentials): Promise<Cached | { kind: 'error'; reason: string }> {
    this.requests++;
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          clientId: creds.clientId,
          username: creds.username ?? null,
          password: creds.password?.toString('utf8') ?? null,
          remoteAddress: creds.remoteAddress,
        }),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
        redirect: 'error',
      });
      text = await res.text();
    } catch (err) {
      const e = err as Error & { cause?: Error };
      return { kind: 'error', reason: `auth server: ${e.name === 'TimeoutError' ? 'timeout' : (e.cause?.message ?? e.message)}` };
    }
    if (res.status !== 200) return { kind: 'deny', reason: `auth server answered ${res.status}` };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { kind: 'deny', reason: 'auth server answered no JSON' };
    }
    if (body === null || typeof body !== 'object' || (body as { result?: unknown }).result !== 'allow') {
      return { kind: 'deny', reason: 'auth server denied' };
    }
    const b = body as { superuser?: unknown; is_superuser?: unknown; acl?: unknown };
    return { kind: 'allow', superuser: b.superuser === true || b.is_superuser === true, acl: b.acl };
  }
}

/** EMQX-style rule list as rules; malformed entries are skipped, an `acl` that is not a list grants nothing. */
export function aclFromList(list: unknown, clientId: string, username: string | undefined): Rule[] {
  const rules: Rule[] = [];
  if (!Array.isArray(list)) return rules;
  for (const e of list) {
    if (e === null || typeof e !== 'object') continue;
    const { permission, action, topic } = e as Record<string, unknown>;
    if (typeof topic !== 'string' || (permission !== 'allow' && permission !== 'deny')) continue;
    const bits = action === 'publish' ? WRITE : action === 'subscribe' ? READ : action === 'all' || action === undefined ? READ | WRITE : 0;
    if (bits === 0) continue;
    const normalized = topic.split('/').map((l) => (l === '${clientid}' ? '%c' : l === '${username}' ? '%u' : l)).join('/');
    if (validateTopicFilter(normalized)) continue;
    const filter = substitute(normalized, clientId, username);
    if (filter === undefined) continue;
    rules.push(permission === 'allow' ? { allow: bits, deny: 0, filter } : { allow: 0, deny: bits, filter });
  }
  return rules;
}

/** The address part of `ip:port` (IPv6 addresses hold colons too). */
export function hostOf(remoteAddress: string): string {
  const i = remoteAddress.lastIndexOf(':');
  let host = i < 0 ? remoteAddress : remoteAddress.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host;
}
