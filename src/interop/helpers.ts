/**
 * Helpers for the interop tests: bounded child processes (argument arrays, never a shell) whose
 * output can be awaited line by line, and MQTT.js clients whose messages can be awaited.
 * Every wait here has a deadline; every child is killed by `killAll()` (call it in t.after).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';

/** The repository root (this file is compiled to dist/interop/helpers.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Rejects with `label` if `p` does not settle within `ms`. */
export async function within<T>(p: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${label}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` until it returns true; fails after `ms`. */
export async function until(cond: () => boolean, ms: number, label: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timeout after ${ms} ms: ${label}`);
    await sleep(20);
  }
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned child process with its output collected, line by line. */
export class Proc {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  private waiters: Array<() => void> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly cmd: string,
    readonly args: string[],
    opts: { env?: NodeJS.ProcessEnv; cwd?: string; maxLifetimeMs: number },
  ) {
    this.child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => {
      this.stdout += d;
      this.wake();
    });
    this.child.stderr!.on('data', (d: string) => {
      this.stderr += d;
      this.wake();
    });
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.child.on('error', (err) => {
        this.stderr += `spawn error: ${err.message}\n`;
        this.exit = { code: -1, signal: null };
        this.wake();
        resolve(this.exit);
      });
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        this.wake();
        resolve(this.exit);
      });
    });
    // Hard bound on the lifetime of every child, whatever the test does.
    this.timer = setTimeout(() => this.kill('SIGKILL'), opts.maxLifetimeMs);
    this.timer.unref();
    void this.exited.then(() => clearTimeout(this.timer));
    children.add(this);
  }

  get lines(): string[] {
    return this.stdout.split('\n').filter((l) => l.length > 0);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until `cond()` holds (re-checked on output and exit); fails after `ms`. */
  async waitFor<T>(cond: () => T | undefined | false, ms: number, label: string): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = cond();
      if (v !== undefined && v !== false) return v;
      const left = deadline - Date.now();
      if (left <= 0 || this.exit) {
        // One last look: output may have arrived together with the exit.
        const last = cond();
        if (last !== undefined && last !== false) return last;
        throw new Error(
          `${left <= 0 ? `timeout after ${ms} ms` : `process exited (${JSON.stringify(this.exit)})`} waiting for ${label}\n` +
            `command: ${this.cmd} ${this.args.join(' ')}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for a stdout line matching `re`; returns the match. */
  waitForLine(re: RegExp, ms: number): Promise<RegExpMatchArray> {
    return this.waitFor(
      () => {
        for (const l of this.lines) {
          const m = l.match(re);
          if (m) return m;
        }
        return undefined;
      },
      ms,
      `a line matching ${re}`,
    );
  }

  /** Waits for the process to exit; fails (and kills it) after `ms`. */
  async waitExit(ms: number): Promise<ExitInfo> {
    try {
      return await within(this.exited, ms, `exit of ${this.cmd} ${this.args.join(' ')}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
    } catch (err) {
      this.kill('SIGKILL');
      throw err;
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exit && this.child.pid !== undefined) {
      try {
        this.child.kill(signal);
      } catch {
        /* already gone */
      }
    }
  }

  describe(): string {
    return `command: ${this.cmd} ${this.args.join(' ')}\nexit: ${JSON.stringify(this.exit)}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`;
  }
}

const children = new Set<Proc>();

export function startProc(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; maxLifetimeMs?: number } = {}): Proc {
  return new Proc(cmd, args, { maxLifetimeMs: 30_000, ...opts });
}

/** Runs a command to completion (bounded by `ms`, then killed and failed). */
export async function runProc(
  cmd: string,
  args: string[],
  ms = 15_000,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Proc> {
  const p = startProc(cmd, args, { ...opts, maxLifetimeMs: ms + 5_000 });
  await p.waitExit(ms);
  return p;
}

/** Kills every child process started by these helpers that is still running. */
export async function killAll(): Promise<void> {
  const running = [...children].filter((c) => !c.exit);
  for (const c of running) c.kill('SIGKILL');
  await Promise.all(running.map((c) => within(c.exited, 5_000, 'child exit').catch(() => undefined)));
  children.clear();
}

// ---------------------------------------------------------------------------------------------
// MQTT.js

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  properties?: IPublishPacket['properties'];
}

/** An MQTT.js client whose received messages are recorded from the very first one. */
export class JsClient {
  readonly messages: Received[] = [];
  readonly disconnects: Array<{ reasonCode?: number }> = [];
  connack: { sessionPresent: boolean; reasonCode?: number; returnCode?: number } | undefined;
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet: IPublishPacket) => {
      this.messages.push({ topic, payload: payload.toString('utf8'), qos: packet.qos, retain: packet.retain, dup: packet.dup, properties: packet.properties });
      this.wake();
    });
    client.on('disconnect', (p) => {
      this.disconnects.push({ reasonCode: p.reasonCode });
      this.wake();
    });
    client.on('close', () => {
      this.closed = true;
      this.wake();
    });
    client.on('error', () => undefined);
  }

  static async connect(url: string, opts: IClientOptions): Promise<JsClient> {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
    const c = new JsClient(client);
    jsClients.add(c);
    await within(
      new Promise<void>((resolve, reject) => {
        client.once('connect', (connack) => {
          c.connack = connack;
          resolve();
        });
        client.once('error', reject);
        client.once('close', () => reject(new Error('closed before CONNACK')));
      }),
      8_000,
      `MQTT.js connect ${opts.clientId ?? ''}`,
    );
    return c;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async waitFor(cond: () => boolean, ms: number, label: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout after ${ms} ms waiting for ${label}; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for a message on `topic` (optionally with `payload`); returns it. */
  async waitMessage(topic: string, ms = 5_000, payload?: string): Promise<Received> {
    let found: Received | undefined;
    await this.waitFor(
      () => (found = this.messages.find((m) => m.topic === topic && (payload === undefined || m.payload === payload))) !== undefined,
      ms,
      `a message on ${topic}${payload === undefined ? '' : ` with payload ${payload}`}`,
    );
    return found!;
  }

  async subscribe(topic: string | string[], qos: 0 | 1 | 2): Promise<number[]> {
    const granted = await within(this.client.subscribeAsync(topic, { qos }), 5_000, `subscribe ${String(topic)}`);
    return granted.map((g) => g.qos);
  }

  async publish(topic: string, payload: string, qos: 0 | 1 | 2, retain = false, properties?: IPublishPacket['properties']): Promise<void> {
    await within(this.client.publishAsync(topic, payload, { qos, retain, properties }), 5_000, `publish ${topic} qos ${qos}`);
  }

  async end(): Promise<void> {
    if (this.closed) return;
    await within(this.client.endAsync(), 5_000, 'MQTT.js end').catch(() => this.client.end(true));
  }
}

const jsClients = new Set<JsClient>();

/** Force-closes every MQTT.js client created by these helpers. */
export async function endAllJs(): Promise<void> {
  for (const c of jsClients) c.client.end(true);
  jsClients.clear();
}

let counter = 0;
/** A unique id / topic prefix for one test. */
export function uid(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

/** A unique client id of at most 23 characters (the MQTT 3.1 limit). */
export function shortId(prefix: string): string {
  return `${prefix.slice(0, 6)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 12)}`.slice(0, 23);
}
