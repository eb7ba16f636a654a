/**
 * Smoke test of the C load generator (bench/loadgen.c): compiles it with gcc (-O2 -Wall -Werror)
 * and runs every scenario briefly against a `skein start` child process, checking that each
 * prints one JSON line whose counts are positive and consistent. No timed assertions: rates are
 * only required to be above zero. gcc (Debian packages gcc and libc6-dev) is required; without
 * it the test fails, it is not skipped.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT, killAll, runProc, startProc, tempDir, type Proc } from '../interop/helpers.js';
import { startClusterNode } from '../cluster/testing.js';
import { startRedis } from '../testing/redis.js';

const SKEIN = join(REPO_ROOT, 'bin', 'skein.js');
const SOURCE = join(REPO_ROOT, 'bench', 'loadgen.c');

type Result = Record<string, unknown> & {
  scenario: string;
  delivered: number;
  rate: number;
  sent: number;
  acked: number;
  genCpu: number;
  brokerCpu: number | null;
};

/** The environment without any SKEIN_* variable of the parent, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SKEIN_')) env[k] = v;
  return { ...env, ...extra };
}

const GCC_MISSING =
  'gcc is needed to build bench/loadgen.c: install the Debian packages gcc and libc6-dev (apt-get install -y gcc libc6-dev)';

function haveGcc(): boolean {
  const gcc = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  return !gcc.error && gcc.status === 0;
}

// A test of its own, so that a machine without gcc shows one plain failure (not only cancelled tests).
it('gcc is installed (bench/loadgen.c is built with it)', () => {
  assert.ok(haveGcc(), GCC_MISSING);
});

describe('bench/loadgen.c against skein start', () => {
  const dir = tempDir('skein-loadgen-');
  const binary = join(dir.path, 'loadgen');
  let broker: Proc;
  let port = 0;
  let pid = 0;

  before(async () => {
    if (!haveGcc()) throw new Error(GCC_MISSING);
    const cc = await runProc('gcc', ['-O2', '-Wall', '-Werror', '-o', binary, SOURCE], 60_000);
    assert.equal(cc.exit?.code, 0, `gcc failed:\n${cc.describe()}`);
    broker = startProc(
      process.execPath,
      [SKEIN, 'start', '-p', '0', '--host', '127.0.0.1', '--data-dir', join(dir.path, 'data'), '--log-level', 'warn'],
      {
        env: cleanEnv({ SKEIN_LIMITS__CONNECT_RATE_PER_SOURCE: '0', SKEIN_LIMITS__CONNECT_RATE: '0', SKEIN_LIMITS__MAX_QUEUED_MESSAGES: '5000' }),
        cwd: REPO_ROOT,
        maxLifetimeMs: 120_000,
      },
    );
    const m = await broker.waitForLine(/^skein listening on mqtt:\/\/127\.0\.0\.1:(\d+)$/, 15_000);
    port = Number(m[1]);
    pid = broker.child.pid!;
  });

  after(async () => {
    await killAll();
    dir.remove();
  });

  /** Runs the generator (short window) and returns its JSON line. */
  async function run(args: string[]): Promise<Result> {
    const p = await runProc(binary, ['--port', String(port), '--broker-pid', String(pid), '--seconds', '0.3', '--warmup', '0.1', ...args], 30_000);
    assert.equal(p.exit?.code, 0, p.describe());
    const lines = p.lines;
    assert.equal(lines.length, 1, `one JSON line expected:\n${p.describe()}`);
    const r = JSON.parse(lines[0]!) as Result;
    assert.equal(r.tool, 'loadgen.c');
    assert.equal(typeof r.genCpu, 'number');
    assert.equal(typeof r.brokerCpu, 'number', 'brokerCpu is measured with --broker-pid');
    assert.ok(r.brokerCpu! >= 0);
    return r;
  }

  for (const qos of [0, 1, 2]) {
    it(`fanin QoS ${qos}: 3 publishers -> 1 subscriber`, async () => {
      const r = await run(['--scenario', 'fanin', '--qos', String(qos), '--publishers', '3', '--window', '8']);
      assert.equal(r.scenario, 'fanin');
      assert.equal(r.publishers, 3);
      assert.equal(r.subscribers, 1);
      assert.ok(r.delivered > 0 && r.rate > 0, JSON.stringify(r));
      assert.ok(r.sent > 0);
      if (qos > 0) assert.ok(r.acked > 0, JSON.stringify(r));
    });

    it(`fanout QoS ${qos}: 1 publisher -> 5 subscribers`, async () => {
      const r = await run(['--scenario', 'fanout', '--qos', String(qos), '--subscribers', '5', '--window', '8']);
      assert.equal(r.subscribers, 5);
      assert.ok(r.delivered > 0 && r.rate > 0, JSON.stringify(r));
      if (qos > 0) assert.ok(r.acked > 0, JSON.stringify(r));
    });
  }

  it('pairs QoS 1: 5 pairs on distinct topics', async () => {
    const r = await run(['--scenario', 'pairs', '--qos', '1', '--pairs', '5', '--window', '8']);
    assert.equal(r.publishers, 5);
    assert.equal(r.subscribers, 5);
    assert.ok(r.delivered > 0 && r.acked > 0, JSON.stringify(r));
  });

  it('latency QoS 1 paced: percentiles are reported', async () => {
    const r = await run(['--scenario', 'latency', '--qos', '1', '--rate', '1000']);
    assert.ok(r.delivered > 0, JSON.stringify(r));
    assert.equal(typeof r.p50us, 'number');
    assert.equal(typeof r.p99us, 'number');
    assert.ok((r.p50us as number) <= (r.p90us as number), 'p50 <= p90');
    assert.ok((r.p90us as number) <= (r.p99us as number), 'p90 <= p99');
    assert.ok((r.p99us as number) <= (r.p999us as number), 'p99 <= p99.9');
    assert.ok((r.p999us as number) <= (r.maxus as number), 'p99.9 <= max');
    // The share above 300 us agrees with the percentiles: 0 when p99.9 is below it, at least 0.1%
    // when p99.9 is above, never more than 1% while p99 is below it.
    const over = r.over300pct as number;
    assert.ok(typeof over === 'number' && over >= 0 && over <= 100, JSON.stringify(r));
    if ((r.maxus as number) < 300) assert.equal(over, 0);
    if ((r.p999us as number) > 300) assert.ok(over >= 0.1, JSON.stringify(r));
    if ((r.p99us as number) < 300) assert.ok(over <= 1, JSON.stringify(r));
  });

  it('latency QoS 1 paced evenly (--pace even): each message at its own due time, percentiles reported', async () => {
    const r = await run(['--scenario', 'latency', '--qos', '1', '--rate', '1000', '--pace', 'even']);
    assert.equal(r.pace, 'even');
    assert.ok(r.delivered > 0 && r.acked > 0, JSON.stringify(r));
    assert.ok((r.p50us as number) <= (r.p99us as number), 'p50 <= p99');
  });

  it('an unknown --pace is a usage error (exit status 2), not a run', async () => {
    const p = await runProc(binary, ['--port', String(port), '--scenario', 'latency', '--pace', 'smooth'], 10_000);
    assert.equal(p.exit?.code, 2, p.describe());
    assert.match(p.stderr, /usage: loadgen/);
  });

  it('filters: every message reaches the one subscriber holding its filter', async () => {
    const r = await run(['--scenario', 'filters', '--filters', '300', '--subscribers', '3', '--publishers', '2']);
    assert.equal(r.scenario, 'filters');
    assert.equal(r.filters, 300);
    assert.equal(r.subscribers, 3);
    assert.ok(r.delivered > 0, JSON.stringify(r));
    assert.equal(r.misrouted, 0, JSON.stringify(r));
  });

  it('retained: each subscription delivers all preloaded retained messages', async () => {
    const r = await run(['--scenario', 'retained', '--retained', '200', '--subscribers', '2']);
    assert.equal(r.retained, 200);
    assert.ok(r.delivered >= 200, JSON.stringify(r));
    assert.ok((r.cycles as number) >= 1, JSON.stringify(r));
    assert.equal(r.stalls, 0, JSON.stringify(r));
  });

  it('backlog: the persistent session drains exactly the queued messages', async () => {
    const r = await run(['--scenario', 'backlog', '--backlog', '300', '--window', '16']);
    assert.equal(r.backlog, 300);
    assert.equal(r.sent, 300);
    assert.equal(r.acked, 300);
    assert.equal(r.complete, true, JSON.stringify(r));
    assert.equal(r.distinct, 300);
    assert.equal(r.duplicates, 0);
    assert.equal(r.sessionPresent, 1);
    assert.ok(r.rate > 0 && (r.drainRate as number) > 0);
  });

  it('idle: all connections get a CONNACK and stay open; broker memory is read', async () => {
    const r = await run(['--scenario', 'idle', '--connections', '200', '--outstanding', '50', '--hold', '0.2']);
    assert.equal(r.connections, 200);
    assert.equal(r.connected, 200);
    assert.equal(r.closedDuringHold, 0);
    assert.ok((r.connectRate as number) > 0);
    assert.equal(typeof r.rssBeforeKB, 'number');
    assert.equal(typeof r.rssAfterKB, 'number');
    assert.equal(typeof r.kbPerConn, 'number');
  });

  it('rejects an unknown scenario with the usage text', async () => {
    const p = await runProc(binary, ['--port', String(port), '--scenario', 'nope'], 10_000);
    assert.equal(p.exit?.code, 2);
    assert.match(p.stderr, /usage: loadgen/);
  });

  it('the broker is still running after all scenarios', () => {
    assert.equal(broker.exit, undefined, broker.describe());
  });
});

describe('bench/loadgen.c --sub-port: publishers on one cluster node, subscribers on another', () => {
  const dir = tempDir('skein-loadgen-cluster-');
  const binary = join(dir.path, 'loadgen');

  after(async () => {
    await killAll();
    dir.remove();
  });

  it('fanin QoS 1 and backlog cross nodes (as bench/run.sh runs skein-cluster)', { timeout: 90_000 }, async (t) => {
    if (!haveGcc()) throw new Error(GCC_MISSING);
    const cc = await runProc('gcc', ['-O2', '-Wall', '-Werror', '-o', binary, SOURCE], 60_000);
    assert.equal(cc.exit?.code, 0, `gcc failed:\n${cc.describe()}`);
    const redis = await startRedis();
    t.after(() => redis.stop());
    const url = `redis://127.0.0.1:${redis.port}`;
    const env = { SKEIN_LIMITS__CONNECT_RATE_PER_SOURCE: '0', SKEIN_LIMITS__CONNECT_RATE: '0' };
    const a = await startClusterNode('lg-a', url, { env });
    const b = await startClusterNode('lg-b', url, { env });
    const gen = async (args: string[]): Promise<Result> => {
      const p = await runProc(binary, ['--port', String(a.port), '--sub-port', String(b.port), '--broker-pid', String(a.proc.child.pid), '--seconds', '0.5', '--warmup', '0.2', ...args], 30_000);
      assert.equal(p.exit?.code, 0, p.describe());
      return JSON.parse(p.lines[0]!) as Result;
    };
    const fanin = await gen(['--scenario', 'fanin', '--qos', '1', '--publishers', '3', '--window', '8']);
    assert.ok(fanin.delivered > 0 && fanin.acked > 0, JSON.stringify(fanin));
    // The backlog is queued through node a for a session that lives on node b: all of it, once.
    const backlog = await gen(['--scenario', 'backlog', '--backlog', '300', '--window', '16']);
    assert.equal(backlog.complete, true, JSON.stringify(backlog));
    assert.equal(backlog.distinct, 300);
    assert.equal(backlog.duplicates, 0);
    assert.equal(backlog.sessionPresent, 1);
  });
});
