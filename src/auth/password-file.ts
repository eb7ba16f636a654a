/**
 * Mosquitto password files (`password_file`, made by `mosquitto_passwd` or `skein passwd`).
 *
 * One `username:hash` per line (compatibility.md section 1.1):
 *   `$7$<iterations>$<base64 salt, 12 bytes>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations), 64 bytes>`
 *   `$6$<base64 salt, 12 bytes>$<base64 SHA512(password || salt), 64 bytes>` (legacy, `-H sha512`)
 * Lines starting with `#` and blank lines are ignored. A line that does not parse is reported
 * with its line number and skipped (like Mosquitto, which drops such users and keeps going).
 */
import { Buffer } from 'node:buffer';
import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** Iterations of `$7$` hashes written by `mosquitto_passwd` 2.0 (`PW_DEFAULT_ITERATIONS`). */
export const DEFAULT_ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;

export type PasswordHash =
  | { type: 7; iterations: number; salt: Buffer; hash: Buffer }
  | { type: 6; salt: Buffer; hash: Buffer };

export interface PasswordFileIssue {
  line: number;
  problem: string;
}

export interface ParsedPasswordFile {
  users: Map<string, PasswordHash>;
  issues: PasswordFileIssue[];
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decode64(s: string, bytes: number): Buffer | undefined {
  if (!BASE64.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.length === bytes ? b : undefined;
}

/** Parses one hash (`$7$...` or `$6$...`); a string saying what is wrong otherwise. */
export function parseHash(text: string): PasswordHash | string {
  const parts = text.split('$');
  // "$7$101$salt$hash" splits to ['', '7', '101', 'salt', 'hash']
  if (parts[0] !== '') return 'hash does not start with "$"';
  if (parts[1] === '7') {
    if (parts.length !== 5) return 'expected $7$<iterations>$<salt>$<hash>';
    if (!/^\d{1,9}$/.test(parts[2]!) || Number(parts[2]) < 1) return `invalid iterations "${parts[2]}"`;
    const salt = decode64(parts[3]!, SALT_BYTES);
    if (!salt) return `salt is not ${SALT_BYTES} bytes of base64`;
    const hash = decode64(parts[4]!, HASH_BYTES);
    if (!hash) return `hash is not ${HASH_BYTES} bytes of base64`;
    return { type: 7, iterations: Number(parts[2]), salt, hash };
  }
  if (parts[1] === '6') {
    if (parts.length !== 4) return 'expected $6$<salt>$<hash>';
    const salt = decode64(parts[2]!, SALT_BYTES);
    if (!salt) return `salt is not ${SALT_BYTES} bytes of base64`;
    const hash = decode64(parts[3]!, HASH_BYTES);
    if (!hash) return `hash is not ${HASH_BYTES} bytes of base64`;
    return { type: 6, salt, hash };
  }
  return `unsupported hash type "$${parts[1] ?? ''}$" (only $6$ and $7$)`;
}

/** Parses the text of a password file; never throws. The first line for a user wins. */
export function parsePasswordFile(text: string): ParsedPasswordFile {
  const users = new Map<string, PasswordHash>();
  const issues: PasswordFileIssue[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const line = i + 1;
    const colon = raw.indexOf(':');
    if (colon <= 0) {
      issues.push({ line, problem: colon === 0 ? 'empty user name' : 'no ":" between user name and hash' });
      continue;
    }
    const user = raw.slice(0, colon).trim();
    const parsed = parseHash(raw.slice(colon + 1).trim());
    if (typeof parsed === 'string') {
      issues.push({ line, problem: `user "${user}": ${parsed}` });
      continue;
    }
    if (users.has(user)) {
      issues.push({ line, problem: `user "${user}" appears again (the first line is used)` });
      continue;
    }
    users.set(user, parsed);
  }
  return { users, issues };
}

/** Hashes a password as `mosquitto_passwd` does; returns the text after `user:`. */
export async function hashPassword(password: string, opts: { type?: 6 | 7; iterations?: number } = {}): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  if (opts.type === 6) {
    const hash = createHash('sha512').update(password, 'utf8').update(salt).digest();
    return `$6$${salt.toString('base64')}$${hash.toString('base64')}`;
  }
  const iterations = opts.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error(`invalid iterations ${iterations}`);
  const hash = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, HASH_BYTES, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against a hash in constant time (PBKDF2 runs off the event loop). */
export async function verifyPassword(password: Buffer, h: PasswordHash): Promise<boolean> {
  const computed =
    h.type === 7
      ? await pbkdf2Async(password, h.salt, h.iterations, HASH_BYTES, 'sha512')
      : createHash('sha512').update(password).update(h.salt).digest();
  return computed.length === h.hash.length && timingSafeEqual(computed, h.hash);
}

/** A dummy hash checked for unknown users, so that they take as long as known ones. */
const DUMMY: PasswordHash = { type: 7, iterations: DEFAULT_ITERATIONS, salt: Buffer.alloc(SALT_BYTES), hash: Buffer.alloc(HASH_BYTES) };

/** The users of one password file; `load()` again to reload. */
export class PasswordFile {
  private users = new Map<string, PasswordHash>();

  constructor(readonly path: string) {}

  /** Reads the file; throws when it cannot be read (the old users stay). Returns the issues. */
  async load(): Promise<PasswordFileIssue[]> {
    const text = await readFile(this.path, 'utf8');
    const parsed = parsePasswordFile(text);
    this.users = parsed.users;
    return parsed.issues;
  }

  get size(): number {
    return this.users.size;
  }

  has(username: string): boolean {
    return this.users.has(username);
  }

  /** `unknown` when the user is not in the file (another authenticator may know it). */
  async check(username: string, password: Buffer | undefined): Promise<'ok' | 'bad' | 'unknown'> {
    const h = this.users.get(username);
    if (!h) {
      await verifyPassword(password ?? Buffer.alloc(0), DUMMY);
      return 'unknown';
    }
    if (password === undefined) return 'bad';
    return (await verifyPassword(password, h)) ? 'ok' : 'bad';
  }
}
