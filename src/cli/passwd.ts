/**
 * `skein passwd`: writes Mosquitto password files, like `mosquitto_passwd` (2.0):
 *   skein passwd [-H sha512-pbkdf2|sha512] [-I iterations] [-c | -D] FILE USER
 *   skein passwd [-H ...] [-I iterations] [-c] -b FILE USER PASSWORD
 * -c creates (or overwrites) FILE; -D deletes USER; -b takes the password from the command line,
 * otherwise it is read twice from the terminal (no echo). Other lines of FILE are kept as they
 * are. The file is replaced atomically (temporary file + rename); a new file gets mode 0600.
 */
import { Buffer } from 'node:buffer';
import { readFile, rename, stat, writeFile, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_ITERATIONS, hashPassword } from '../auth/password-file.js';

const USAGE = `Usage: skein passwd [-H sha512-pbkdf2|sha512] [-I iterations] [-c | -D] FILE USER
       skein passwd [-H sha512-pbkdf2|sha512] [-I iterations] [-c] -b FILE USER PASSWORD

 -b  take the password from the command line (batch mode)
 -c  create a new password file; an existing one is overwritten
 -D  delete USER from FILE
 -H  hash: sha512-pbkdf2 (default, "$7$") or sha512 (legacy "$6$")
 -I  PBKDF2 iterations (default ${DEFAULT_ITERATIONS}, as mosquitto_passwd 2.0)
Without -b the password is read twice from the terminal.
`;

export interface PasswdIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Reads a password without echo; undefined when there is no terminal. */
  readPassword?: (prompt: string) => Promise<string | undefined>;
}

export async function passwdCommand(argv: string[], io: PasswdIo = { stdout: process.stdout, stderr: process.stderr, readPassword: readTtyPassword }): Promise<number> {
  const err = (m: string) => io.stderr.write(`Error: ${m}\n`);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        b: { type: 'boolean', short: 'b' },
        c: { type: 'boolean', short: 'c' },
        D: { type: 'boolean', short: 'D' },
        H: { type: 'string', short: 'H' },
        I: { type: 'string', short: 'I' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    io.stderr.write(`skein passwd: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals: pos } = parsed;
  if (v.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  if (v.c && v.D) {
    err('-c and -D cannot be used together.');
    return 1;
  }
  const type = v.H === undefined || v.H === 'sha512-pbkdf2' ? 7 : v.H === 'sha512' ? 6 : undefined;
  if (type === undefined) {
    err(`Unknown hash type "${v.H}" (use sha512-pbkdf2 or sha512).`);
    return 1;
  }
  let iterations = DEFAULT_ITERATIONS;
  if (v.I !== undefined) {
    if (!/^\d{1,9}$/.test(v.I) || Number(v.I) < 1) {
      err(`Invalid number of iterations "${v.I}".`);
      return 1;
    }
    iterations = Number(v.I);
  }
  const wanted = v.D ? 2 : v.b ? 3 : 2;
  if (pos.length !== wanted) {
    io.stderr.write(USAGE);
    return 2;
  }
  const [file, user] = pos as [string, string];
  if (user.includes(':')) {
    err('Username must not contain the \':\' character.');
    return 1;
  }
  if (user.length > 65535) {
    err('Username must be less than 65536 characters long.');
    return 1;
  }

  let existing: string[] = [];
  let mode = 0o600;
  if (!v.c) {
    try {
      existing = (await readFile(file, 'utf8')).split(/\r?\n/);
      if (existing[existing.length - 1] === '') existing.pop();
      mode = (await stat(file)).mode & 0o777;
    } catch (e) {
      err(`Unable to open file ${file} for reading. ${(e as Error).message}`);
      return 1;
    }
  }
  const isUserLine = (l: string) => {
    const t = l.trim();
    return !t.startsWith('#') && t.includes(':') && t.slice(0, t.indexOf(':')).trim() === user;
  };

  let lines: string[];
  if (v.D) {
    lines = existing.filter((l) => !isUserLine(l));
    if (lines.length === existing.length) {
      err(`User ${user} not found in ${file}.`);
      return 1;
    }
  } else {
    let password: string | undefined;
    if (v.b) {
      password = pos[2]!;
    } else {
      const read = io.readPassword;
      const first = read ? await read('Password: ') : undefined;
      if (first === undefined) {
        err('no terminal to read the password from; use -b FILE USER PASSWORD.');
        return 1;
      }
      const second = await read!('Reenter password: ');
      if (second !== first) {
        err('Passwords do not match.');
        return 1;
      }
      password = first;
    }
    if (password.length === 0) {
      err('Empty password.');
      return 1;
    }
    if (Buffer.byteLength(password) > 65535) {
      err('Password too long.');
      return 1;
    }
    const entry = `${user}:${await hashPassword(password, { type, iterations })}`;
    let replaced = false;
    lines = [];
    for (const l of existing) {
      if (!isUserLine(l)) lines.push(l);
      else if (!replaced) {
        lines.push(entry);
        replaced = true;
      }
    }
    if (!replaced) lines.push(entry);
  }

  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, lines.map((l) => l + '\n').join(''), { mode });
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    err(`Unable to write ${file}. ${(e as Error).message}`);
    return 1;
  }
  return 0;
}

/** Reads a line from the terminal with echo off; undefined when stdin is not a terminal. */
export function readTtyPassword(prompt: string): Promise<string | undefined> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return Promise.resolve(undefined);
  process.stderr.write(prompt);
  return new Promise((resolve) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (result: string | undefined) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      resolve(result);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(value);
        if (ch === '\u0003' || ch === '\u0004') return done(undefined); // Ctrl-C, Ctrl-D
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
