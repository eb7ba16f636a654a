/**
 * `skein cluster up` end to end: real redis-server, two real node processes, real HAProxy, all
 * started by the command; an MQTT.js client pair through the printed address, `cluster status`
 * listing both nodes, then SIGINT: exit 0 and every child PID gone.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '../cluster/testing.js';
import { JsClient, killAll, REPO_ROOT, runProc, sleep, startProc, until } from '../interop/helpers.js';

after(() => killAll());

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function freeRange(n: number): Promise<number> {
  // A base whose n+1 consecutive ports are free (bounded attempts).
  for (let i = 0; i < 50; i++) {
    const base = await freePort();
    if (base > 65000) continue;
    const net = await import('node:net');
    let ok = true;
    for (let p = base; p <= base + n && ok; p++) {
      ok = await new Promise<boolean>((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(false));
        s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
      });
    }
    if (ok) return base;
  }
  throw new Error('no free port range');
}

test('skein cluster up --nodes 2: connect through HAProxy, status, SIGINT stops every child', { timeout: 90_000 }, async (t) => {
  const bin = join(REPO_ROOT, 'bin/skein.js');
  const base = await freeRange(2);
  const up = startProc(process.execPath, [bin, 'cluster', 'up', '--nodes', '2', '--base-port', String(base)], { maxLifetimeMs: 80_000 });
  const pids: number[] = [];
  t.after(() => {
    // If the test failed before SIGINT: stop cluster up, then anything it left (its own children, by PID).
    up.kill('SIGINT');
    setTimeout(() => pids.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')), 10_000).unref();
  });
  const m = await up.waitForLine(/^connect to (mqtt:\/\/127\.0\.0\.1:(\d+))/, 40_000);
  assert.equal(Number(m[2]), base);
  for (const l of up.lines) {
    const p = /pid (\d+)$/.exec(l);
    if (p) pids.push(Number(p[1]));
  }
  assert.equal(pids.length, 4, `redis + 2 nodes + haproxy pids:\n${up.stdout}`);
  assert.ok(pids.every(alive));
  assert.match(up.stdout, new RegExp(`node n1 mqtt://127\\.0\\.0\\.1:${base + 1} `));
  assert.match(up.stdout, new RegExp(`node n2 mqtt://127\\.0\\.0\\.1:${base + 2} `));

  const url = m[1]!;
  const sub = await JsClient.connect(url, { clientId: 'up-sub', protocolVersion: 5 });
  const pub = await JsClient.connect(url, { clientId: 'up-pub', protocolVersion: 4 });
  t.after(() => {
    sub.client.end(true);
    pub.client.end(true);
  });
  await sub.client.subscribeAsync('up/#', { qos: 1 });
  await sleep(300); // the subscription reaches the other node through the change feed
  await pub.client.publishAsync('up/x', 'across', { qos: 1 });
  await until(() => sub.messages.some((x) => x.payload === 'across'), 10_000, 'message through the cluster');

  const statusLine = up.lines.find((l) => l.startsWith('status: '))!;
  const args = statusLine.replace(/^status: skein /, '').split(' ');
  await sleep(500); // a heartbeat with the client counts
  const st = await runProc(process.execPath, [bin, ...args], 20_000);
  assert.equal(st.exit!.code, 0, st.stderr);
  assert.match(st.stdout, /^nodes: 2 \(2 alive\)$/m);
  assert.match(st.stdout, new RegExp(`^  n1\\s+127\\.0\\.0\\.1:${base + 1}\\s+yes\\s+\\d+\\s+no$`, 'm'));
  assert.match(st.stdout, new RegExp(`^  n2\\s+127\\.0\\.0\\.1:${base + 2}\\s+yes\\s+\\d+\\s+no$`, 'm'));
  assert.match(st.stdout, /^lease holder: n[12]$/m);
  assert.match(st.stdout, /^clients: 2$/m);

  up.kill('SIGINT');
  const exit = await up.waitExit(40_000);
  assert.deepEqual(exit, { code: 0, signal: null }, up.describe());
  await until(() => pids.every((p) => !alive(p)), 5_000, `children gone: ${pids.filter(alive)}`);
  const tmp = /temp dir (\S+)\)/.exec(up.stdout)![1]!;
  const { existsSync } = await import('node:fs');
  assert.equal(existsSync(tmp), false, 'temp dir removed');
});

test('skein cluster up names what is missing and exits non-zero', async () => {
  const bin = join(REPO_ROOT, 'bin/skein.js');
  // redis-server is in /usr/bin: not found with this PATH (the lookup adds only the sbin dirs).
  const p = await runProc(process.execPath, [bin, 'cluster', 'up', '--nodes', '1'], 15_000, { env: { ...process.env, PATH: '/nonexistent' } });
  assert.notEqual(p.exit!.code, 0);
  assert.match(p.stderr, /redis-server not found: apt-get install redis-server/);
});
