/**
 * Test helpers that run real Redis servers and Sentinels (no mocks): each is a child process of
 * `/usr/bin/redis-server` on 127.0.0.1 with a random port in 20000-40000 and its own temp dir.
 *
 * Ports: binding port 0 and reusing the number is racy, so we pick a random port, start the server
 * and retry with another port when it exits with "Address already in use". A server is ready when
 * its own output says so and it answers PING.
 *
 * Every child is stopped by its PID: `stop()` sends SIGTERM, then SIGKILL after a bound, and removes
 * the temp dir; `kill9()` sends SIGKILL at once (a crash). Children still alive when the test
 * process exits are killed by PID as well.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_SERVER = '/usr/bin/redis-server';
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const PORT_ATTEMPTS = 20;

export interface RedisProcess {
  host: '127.0.0.1';
  port: number;
  pid: number;
  /** Temp dir of the process (config, AOF); removed by `stop()`. */
  dir: string;
  /** Output of the process so far (for diagnostics). */
  output(): string;
  /** SIGTERM, SIGKILL after a bound; removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL now and wait for the exit (the temp dir stays until `stop()`). */
  kill9(): Promise<void>;
}

export interface StartRedisOptions {
  replicaOf?: { host: string; port: number };
  /** Turns on the AOF (`appendonly yes`) with this fsync policy. */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** A fixed port (e.g. to restart a server where it was); no retry on another port. */
  port?: number;
}

export interface StartSentinelOptions {
  /** Master name (default `skein`). */
  name?: string;
  /** `down-after-milliseconds` (default 1000). */
  downAfterMs?: number;
  /** Quorum (default 1). */
  quorum?: number;
}

const live = new Map<number, ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.set(child.pid!, child);
  child.once('exit', () => live.delete(child.pid!));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const pid of live.keys()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
}

function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 20_000);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends PING over a raw socket; resolves true on +PONG. */
function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let data = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
    socket.once('error', () => done(false));
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

type Attempt = { ok: true; proc: RedisProcess } | { ok: false; portInUse: boolean; output: string };

async function attempt(args: string[], port: number, dir: string, readyMarker: string, ownsDir: boolean): Promise<Attempt> {
  const child = spawn(REDIS_SERVER, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  child.once('error', (err) => (out += `\nspawn error: ${err.message}`));
  if (child.pid === undefined) {
    await waitExit(child, 1000);
    return { ok: false, portInUse: false, output: out };
  }
  track(child);
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited()) return { ok: false, portInUse: /Address already in use/i.test(out), output: out };
    if (out.includes(readyMarker) && (await ping(port)) && !exited()) {
      let stopped = false;
      const pid = child.pid;
      const proc: RedisProcess = {
        host: HOST,
        port,
        pid,
        dir,
        output: () => out,
        async kill9() {
          if (exited()) return;
          process.kill(pid, 'SIGKILL');
          await waitExit(child, STOP_TIMEOUT_MS);
        },
        async stop() {
          if (stopped) return;
          stopped = true;
          if (!exited()) {
            process.kill(pid, 'SIGTERM');
            if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
              process.kill(pid, 'SIGKILL');
              await waitExit(child, STOP_TIMEOUT_MS);
            }
          }
          if (ownsDir) rmSync(dir, { recursive: true, force: true });
        },
      };
      return { ok: true, proc };
    }
    await sleep(20);
  }
  process.kill(child.pid, 'SIGKILL');
  await waitExit(child, STOP_TIMEOUT_MS);
  throw new Error(`redis-server did not become ready within ${START_TIMEOUT_MS} ms:\n${out}`);
}

/** Starts `redis-server` on 127.0.0.1 (no RDB snapshots, foreground, temp dir). */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'skein-redis-'));
  let last = '';
  for (let i = 0; i < (opts.port ? 1 : PORT_ATTEMPTS); i++) {
    const port = opts.port ?? randomPort();
    const args = [
      '--port', String(port),
      '--bind', HOST,
      '--save', '',
      '--daemonize', 'no',
      '--dir', dir,
      '--logfile', '',
      '--repl-diskless-sync-delay', '0',
    ];
    if (opts.appendfsync) args.push('--appendonly', 'yes', '--appendfsync', opts.appendfsync);
    else args.push('--appendonly', 'no');
    if (opts.replicaOf) args.push('--replicaof', opts.replicaOf.host, String(opts.replicaOf.port));
    const r = await attempt(args, port, dir, 'Ready to accept connections', true);
    if (r.ok) return r.proc;
    last = r.output;
    if (!r.portInUse) break;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`redis-server did not start:\n${last}`);
}

/** Starts a Sentinel on 127.0.0.1 monitoring `primary` (its config lives in a temp dir). */
export async function startSentinel(primary: { host: string; port: number }, opts: StartSentinelOptions = {}): Promise<RedisProcess & { name: string }> {
  const name = opts.name ?? 'skein';
  const dir = mkdtempSync(join(tmpdir(), 'skein-sentinel-'));
  let last = '';
  for (let i = 0; i < PORT_ATTEMPTS; i++) {
    const port = randomPort();
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        `bind ${HOST}`,
        'daemonize no',
        `dir ${dir}`,
        'logfile ""',
        'sentinel resolve-hostnames no',
        `sentinel monitor ${name} ${primary.host} ${primary.port} ${opts.quorum ?? 1}`,
        `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${name} 5000`,
        '',
      ].join('\n'),
    );
    const r = await attempt([conf, '--sentinel'], port, dir, '+monitor master', true);
    if (r.ok) return { ...r.proc, name };
    last = r.output;
    if (!r.portInUse) break;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`redis sentinel did not start:\n${last}`);
}
