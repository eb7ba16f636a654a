/**
 * JWT authentication: the CONNECT password is a signed token (`jose`).
 *
 * - `secret`: HS256 shared secret; `publicKeyFile`: PEM public key (SPKI) or certificate, RS256.
 *   Both may be set; the token's `alg` header picks the key.
 * - `exp` / `nbf` are checked when present; an expired or invalid token is refused (0x86 / 4).
 * - `usernameClaim` (default `sub`): when the client sent a user name, the claim must equal it.
 * - `clientIdClaim`: when set, the claim must equal the client id.
 * - `aclClaim`: when set, the claim `{ "pub": [filters], "sub": [filters] }` is the client's ACL
 *   (`%c`/`%u` levels replaced); a token without it gets no grants from the token.
 */
import { readFile } from 'node:fs/promises';
import { importSPKI, importX509, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { ConnectCredentials } from './types.js';
import { READ, WRITE, type Rule } from './acl-file.js';
import { substitute } from './topic-match.js';
import { validateTopicFilter } from '../topics/validate.js';

export interface JwtOptions {
  secret?: string;
  publicKeyFile?: string;
  usernameClaim: string;
  clientIdClaim: string;
  aclClaim: string;
}

export type JwtResult = { ok: true; acl?: Rule[] } | { ok: false; reason: string };

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** True when a password has the shape of a compact JWS (three base64url parts). */
export function looksLikeJwt(password: Buffer | undefined): boolean {
  return password !== undefined && password.length < 16_384 && JWT_SHAPE.test(password.toString('latin1'));
}

export class JwtAuthenticator {
  private hmacKey: Uint8Array | undefined;
  private publicKey: CryptoKey | undefined;

  constructor(private readonly opts: JwtOptions) {
    if (opts.secret) this.hmacKey = new TextEncoder().encode(opts.secret);
  }

  /** Reads the public key file (at start and on reload); throws when it is unusable. */
  async load(): Promise<void> {
    if (!this.opts.publicKeyFile) return;
    const pem = await readFile(this.opts.publicKeyFile, 'utf8');
    this.publicKey = pem.includes('BEGIN CERTIFICATE') ? await importX509(pem, 'RS256') : await importSPKI(pem, 'RS256');
  }

  private readonly getKey: JWTVerifyGetKey = (header) => {
    if (header.alg === 'HS256' && this.hmacKey) return this.hmacKey;
    if (header.alg === 'RS256' && this.publicKey) return this.publicKey;
    throw new Error(`token algorithm ${String(header.alg)} is not accepted`);
  };

  async verify(creds: ConnectCredentials): Promise<JwtResult> {
    let payload: JWTPayload;
    try {
      const algorithms = [...(this.hmacKey ? ['HS256'] : []), ...(this.publicKey ? ['RS256'] : [])];
      ({ payload } = await jwtVerify(creds.password!.toString('latin1'), this.getKey, { algorithms }));
    } catch (err) {
      return { ok: false, reason: `invalid token: ${(err as Error).message}` };
    }
    const o = this.opts;
    if (o.usernameClaim && creds.username !== undefined && payload[o.usernameClaim] !== creds.username) {
      return { ok: false, reason: `token claim ${o.usernameClaim} does not match the user name` };
    }
    if (o.clientIdClaim && payload[o.clientIdClaim] !== creds.clientId) {
      return { ok: false, reason: `token claim ${o.clientIdClaim} does not match the client id` };
    }
    if (!o.aclClaim) return { ok: true };
    return { ok: true, acl: aclFromClaim(payload[o.aclClaim], creds.clientId, creds.username) };
  }
}

/** `{ pub: [...], sub: [...] }` as rules; anything malformed grants nothing. */
export function aclFromClaim(claim: unknown, clientId: string, username: string | undefined): Rule[] {
  const rules: Rule[] = [];
  if (claim === null || typeof claim !== 'object' || Array.isArray(claim)) return rules;
  const add = (list: unknown, allow: typeof READ | typeof WRITE) => {
    if (!Array.isArray(list)) return;
    for (const f of list) {
      if (typeof f !== 'string' || validateTopicFilter(f)) continue;
      const filter = substitute(f, clientId, username);
      if (filter !== undefined) rules.push({ allow, deny: 0, filter });
    }
  };
  add((claim as Record<string, unknown>).pub, WRITE);
  add((claim as Record<string, unknown>).sub, READ);
  return rules;
}
