/**
 * The `skein` command line, as a user runs it: `node bin/skein.js ...` in a child process.
 * The broker listens on 127.0.0.1 port 0 (the OS picks); the port is read from the
 * `skein listening on mqtt://HOST:PORT` line on stdout.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { freePort } from '../testing/ports.js';
import { JsClient, REPO_ROOT, endAllJs, killAll, runProc, sleep, startProc, tempDir, uid, until, within, type Proc } from './helpers.js';

const SKEIN = join(REPO_ROOT, 'bin', 'skein.js');

/** The environment without any SKEIN_* variable of the parent, plus `extra`; the JIT warm-up
 *  is off unless `extra` turns it on (it has its own test below). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SKEIN_')) env[k] = v;
  return { ...env, SKEIN_WARMUP__ENABLED: 'false', ...extra };
}

const skein = (args: string[], env: Record<string, string> = {}) =>
  runProc(process.execPath, [SKEIN, ...args], 15_000, { env: cleanEnv(env), cwd: REPO_ROOT });

/** Starts `skein start` on 127.0.0.1:0 and waits for its listening line; returns it and its port. */
async function startSkein(dataDir: string, env: Record<string, string> = {}, logLevel = 'warn'): Promise<{ proc: Proc; port: number; url: string }> {
  const proc = startProc(
    process.execPath,
    [SKEIN, 'start', '-p', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--log-level', logLevel],
    { env: cleanEnv(env), cwd: REPO_ROOT, maxLifetimeMs: 90_000 },
  );
  const m = await proc.waitForLine(/^skein listening on mqtt:\/\/([^\s]+):(\d+)$/, 40_000);
  const port = Number(m[2]);
  assert.equal(m[1], '127.0.0.1');
  assert.ok(port > 0 && port < 65536, `port ${port}`);
  return { proc, port, url: `mqtt://127.0.0.1:${port}` };
}

describe('skein CLI', () => {
  const dirs: Array<{ remove(): void }> = [];
  const mkdir = (p: string) => {
    const d = tempDir(p);
    dirs.push(d);
    return d.path;
  };
  after(async () => {
    await endAllJs();
    await killAll();
    for (const d of dirs) d.remove();
  });

  it('--version prints the package.json version', async () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const p = await skein(['--version']);
    assert.equal(p.exit?.code, 0, p.describe());
    assert.equal(p.stdout.trim(), pkg.version);
  });

  it('--help exits 0 and describes the start command', async () => {
    const p = await skein(['--help']);
    assert.equal(p.exit?.code, 0, p.describe());
    assert.match(p.stdout, /Usage:/);
    assert.match(p.stdout, /skein start/);
    assert.match(p.stdout, /--data-dir/);
  });

  it('an invalid value in the environment stops start-up with a message naming the key', async () => {
    const p = await skein(['start', '-p', '0', '--host', '127.0.0.1', '--data-dir', mkdir('skein-cli-env-')], {
      SKEIN_LIMITS__MAX_PACKET_SIZE: '2GB',
    });
    assert.notEqual(p.exit?.code, 0, p.describe());
    assert.doesNotMatch(p.stdout, /listening/);
    assert.match(p.stderr, /limits\.maxPacketSize/);
    assert.match(p.stderr, /SKEIN_LIMITS__MAX_PACKET_SIZE/);
    assert.match(p.stderr, /2GB/);
  });

  it('a YAML file with unknown keys stops start-up with a message naming each key', async () => {
    const dir = mkdir('skein-cli-yaml-');
    const file = join(dir, 'skein.yaml');
    writeFileSync(file, 'logLevel: warn\nlimits:\n  maxPaketSize: 1MiB\nbogusKey: 1\n');
    const p = await skein(['start', '-c', file, '-p', '0', '--host', '127.0.0.1', '--data-dir', join(dir, 'data')]);
    assert.notEqual(p.exit?.code, 0, p.describe());
    assert.doesNotMatch(p.stdout, /listening/);
    assert.match(p.stderr, /limits\.maxPaketSize/);
    assert.match(p.stderr, /bogusKey/);
    assert.match(p.stderr, /skein\.yaml/);
  });

  it('an unknown SKEIN_* variable stops start-up', async () => {
    const p = await skein(['start', '-p', '0', '--host', '127.0.0.1', '--data-dir', mkdir('skein-cli-unk-')], {
      SKEIN_LIMITS__MAX_PAKET_SIZE: '1MiB',
    });
    assert.notEqual(p.exit?.code, 0, p.describe());
    assert.match(p.stderr, /SKEIN_LIMITS__MAX_PAKET_SIZE|limits\.maxPaketSize/);
  });

  it('start, serve MQTT, SIGTERM: v5 clients get DISCONNECT 0x8B and the process exits 0', async () => {
    const { proc, url } = await startSkein(mkdir('skein-cli-run-'));
    const v5 = await JsClient.connect(url, { protocolVersion: 5, clientId: uid('cli5') });
    const v4 = await JsClient.connect(url, { protocolVersion: 4, clientId: uid('cli4') });
    // It really is a broker.
    const topic = uid('cli/ping');
    await v5.subscribe(topic, 1);
    await v4.publish(topic, 'pong', 1);
    assert.equal((await v5.waitMessage(topic)).payload, 'pong');

    proc.kill('SIGTERM');
    const exit = await proc.waitExit(15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, proc.describe());
    await v5.waitFor(() => v5.disconnects.length > 0 || v5.closed, 5_000, 'the DISCONNECT');
    assert.deepEqual(v5.disconnects.map((d) => d.reasonCode), [0x8b], 'DISCONNECT with reason 0x8B Server shutting down');
    await v4.waitFor(() => v4.closed, 5_000, 'the v4 connection to close');
  });

  it('a reader of stdout and stderr that goes away (skein start 2>&1 | head -1) neither kills nor hangs the node', async () => {
    // One pipe for both, as a shell's `2>&1 |` gives; the test reads the first line, then closes
    // its end. Before: the stdout write's EPIPE was an uncaught error, and the exit's log flush
    // then retried its EPIPE for ever, so the node neither served nor ended.
    const dataDir = mkdir('skein-cli-epipe-');
    const port = await freePort();
    const child = spawn('/bin/sh', ['-c', `exec "$0" "$@" 2>&1`, process.execPath, SKEIN, 'start', '-p', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--log-level', 'info'], {
      env: cleanEnv(),
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    try {
      await within(new Promise((r) => child.stdout!.once('data', r)), 30_000, 'a first line');
      child.stdout!.destroy();
      // The node goes on serving, with nobody reading what it prints or logs.
      let c: JsClient | undefined;
      for (const end = Date.now() + 20_000; c === undefined && Date.now() < end; ) {
        c = await JsClient.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, clientId: uid('epipe') }).catch(() => undefined);
        if (c === undefined) await sleep(200);
      }
      assert.ok(c, 'a client connects after the reader left');
      assert.equal(child.exitCode, null, 'the node is still running');
      await c.end();
      child.kill('SIGTERM');
      const exit = await within(exited, 15_000, 'exit after SIGTERM with a closed log pipe');
      assert.deepEqual(exit, { code: 0, signal: null });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('SIGTERM ends the process even when nobody reads its log (stderr a full pipe)', async () => {
    // stderr is a pipe this test never reads: after 64 KB of log lines every write would block.
    const child = spawn(process.execPath, [SKEIN, 'start', '-p', '0', '--host', '127.0.0.1', '--data-dir', mkdir('skein-cli-stuck-log-'), '--log-level', 'debug'], {
      env: cleanEnv(),
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    try {
      let out = '';
      child.stdout!.setEncoding('utf8');
      const port = await within(
        new Promise<number>((resolve) =>
          child.stdout!.on('data', (d: string) => {
            out += d;
            const m = out.match(/listening on mqtt:\/\/127\.0\.0\.1:(\d+)/);
            if (m) resolve(Number(m[1]));
          }),
        ),
        30_000,
        'the listening line',
      );
      // Each connect and close logs a line at debug: 1,000 of them are far more than a pipe holds.
      const connect = Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]);
      for (let i = 0; i < 1000; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, () =>
            new Promise<void>((resolve) => {
              const s = net.connect(port, '127.0.0.1', () => s.end(connect));
              s.on('error', () => resolve());
              s.on('close', () => resolve());
              s.resume();
            }),
          ),
        );
      }
      child.kill('SIGTERM');
      const exit = await within(exited, 20_000, 'exit after SIGTERM with a blocked log');
      assert.equal(exit.signal, null, JSON.stringify(exit));
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('warmup.enabled: the JIT warm-up runs before the listener opens and leaves nothing in the real store', async () => {
    // The default 10 s limit is for a node that must start anyway; this test checks what the
    // whole warm-up leaves behind, so it gets time for both passes on a slow or busy machine (the
    // suite runs two files at once: the warm-up took 8-10 s pinned to one busy core here).
    const { proc, url } = await startSkein(mkdir('skein-cli-warmup-'), { SKEIN_WARMUP__ENABLED: 'true', SKEIN_WARMUP__TIMEOUT: '30s' }, 'info');
    await until(() => proc.stderr.includes('"msg":"skein started"'), 5_000, 'the started line'); // logs are written asynchronously
    const logs = proc.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const done = logs.findIndex((l) => l.msg === 'warm-up done');
    const restored = logs.findIndex((l) => l.msg === 'state restored');
    assert.ok(done >= 0, `no 'warm-up done' line before listening:\n${proc.stderr}`);
    // Both passes ran (WARMUP_PASSES): the first at least two rounds, the second one.
    const rounds = logs[done]!.rounds as number[][];
    assert.equal(rounds.length, 2, JSON.stringify(rounds));
    assert.ok(rounds[0]!.length >= 2 && rounds[1]!.length === 1, JSON.stringify(rounds));
    assert.ok((logs[done]!.delivered as number) >= 3 * 40_000, `delivered ${String(logs[done]!.delivered)}`);
    // The real store opened after the warm-up, empty: the warm-up's sessions and retained
    // messages were in a store of their own.
    assert.ok(restored > done, 'the real store opens after the warm-up');
    assert.equal(logs[restored]!.sessions, 0);
    assert.equal(logs[restored]!.retained, 0);
    const c = await JsClient.connect(url, { protocolVersion: 4, clientId: 'warmup-backlog', clean: false });
    assert.equal(c.connack?.sessionPresent, false, "the warm-up's persistent session is not in the real node");
    await c.subscribe('warmup/#', 1);
    await sleep(300);
    assert.deepEqual(c.messages, [], 'no retained message of the warm-up');
    proc.kill('SIGTERM');
    assert.deepEqual(await proc.waitExit(15_000), { code: 0, signal: null }, proc.describe());
  });

  it('kill -9 and restart on the same data dir: every acknowledged message is delivered exactly once, retained kept', async () => {
    const dataDir = mkdir('skein-cli-restart-');
    let { proc, url } = await startSkein(dataDir);
    const topic = uid('cli/durable');
    const subs = [
      { clientId: uid('cli-sub4'), opts: { protocolVersion: 4 as const, clean: false } },
      { clientId: uid('cli-sub5'), opts: { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 3600 } } },
    ];
    for (const s of subs) {
      const c = await JsClient.connect(url, { clientId: s.clientId, ...s.opts });
      assert.equal(c.connack?.sessionPresent, false);
      assert.deepEqual(await c.subscribe(`${topic}/q1`, 1), [1]);
      assert.deepEqual(await c.subscribe(`${topic}/q2`, 2), [2]);
      await c.end();
    }

    const pub = await JsClient.connect(url, { protocolVersion: 5, clientId: uid('cli-pub') });
    const N = 25;
    for (let i = 0; i < N; i++) {
      await pub.publish(`${topic}/q1`, `one-${i}`, 1); // resolves on PUBACK
      await pub.publish(`${topic}/q2`, `two-${i}`, 2); // resolves on PUBCOMP
    }
    await pub.publish(`${topic}/retained`, 'retained-value', 1, true);
    pub.client.end(true);

    // kill -9: no flush, no goodbye.
    process.kill(proc.child.pid!, 'SIGKILL');
    const killed = await proc.waitExit(10_000);
    assert.equal(killed.signal, 'SIGKILL');

    ({ proc, url } = await startSkein(dataDir));

    for (const s of subs) {
      const c = await JsClient.connect(url, { clientId: s.clientId, ...s.opts });
      assert.equal(c.connack?.sessionPresent, true, `${s.clientId}: session survived the restart`);
      await c.waitFor(() => c.messages.length >= 2 * N, 10_000, `${2 * N} queued messages for ${s.clientId}`);
      // Sentinels on both topics: any duplicate of a queued message would come before them. (Both
      // sessions subscribe to these topics, so each round has its own sentinel payload.)
      const end = `end-${s.clientId}`;
      const sender = await JsClient.connect(url, { protocolVersion: 5, clientId: uid('cli-sentinel') });
      await sender.publish(`${topic}/q1`, end, 1);
      await sender.publish(`${topic}/q2`, end, 2);
      await sender.end();
      await c.waitFor(() => c.messages.filter((m) => m.payload === end).length === 2, 5_000, 'the sentinels');
      const got = c.messages.filter((m) => !m.payload.startsWith('end-'));
      for (const [sub, prefix, qos] of [
        ['q1', 'one', 1],
        ['q2', 'two', 2],
      ] as const) {
        assert.deepEqual(
          got.filter((m) => m.topic === `${topic}/${sub}`).map((m) => [m.payload, m.qos]),
          Array.from({ length: N }, (_, i) => [`${prefix}-${i}`, qos]),
          `${s.clientId}: every acknowledged ${sub} message exactly once, in order`,
        );
      }
      assert.equal(got.length, 2 * N, `${s.clientId}: nothing else`);
      await c.end();
    }

    const late = await JsClient.connect(url, { protocolVersion: 4, clientId: uid('cli-late') });
    await late.subscribe(`${topic}/retained`, 1);
    const r = await late.waitMessage(`${topic}/retained`);
    assert.equal(r.payload, 'retained-value');
    assert.equal(r.retain, true);
    await late.end();

    proc.kill('SIGTERM');
    assert.deepEqual(await within(proc.exited, 15_000, 'skein exit after SIGTERM'), { code: 0, signal: null }, proc.describe());
  });
});
