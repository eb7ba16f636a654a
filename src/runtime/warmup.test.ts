/**
 * The JIT warm-up (warmup.ts): it runs its whole plan against private nodes, never touches the
 * real node's store, leaves no directory behind, and stops at its time limit.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../config/schema.js';
import { WARMUP_PASSES, sweepStaleWarmupDirs, warmUp, warmupConfig } from './warmup.js';
import { WARMUP_PLAN, mayStartRound } from './warmup-traffic.js';

/** This process's warm-up directories (other test files may run a warm-up at the same time). */
const warmupDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`skein-warmup-${process.pid}-`));

/** PUBLISH packets one round delivers at least: QoS 1 and 2 fan-in, fan-out, retained, backlog
 *  (QoS 0 may be dropped under pressure, so it is not counted). */
const perRound = () =>
  2 * WARMUP_PLAN.fanInPublishers * WARMUP_PLAN.fanInMessages +
  WARMUP_PLAN.fanOutSubscribers * WARMUP_PLAN.fanOutMessages +
  WARMUP_PLAN.retained +
  1 +
  WARMUP_PLAN.backlog;

describe('warm-up', () => {
  it('warmupConfig: loopback port 0, anonymous, never the real store nor Redis', () => {
    const real = defaultConfig();
    real.dataDir = '/var/lib/skein';
    real.cluster.redis = 'redis://10.0.0.1:6379';
    real.listeners = [{ ...real.listeners[0]!, host: '0.0.0.0', port: 1883 }];
    real.limits.maxQueuedMessages = 10;
    const clustered = warmupConfig(real, undefined);
    assert.equal(clustered.cluster.redis, '');
    assert.equal(clustered.cluster.sentinels, '');
    assert.equal(clustered.store.type, 'memory');
    assert.equal(clustered.listeners.length, 1);
    assert.equal(clustered.listeners[0]!.host, '127.0.0.1');
    assert.equal(clustered.listeners[0]!.port, 0);
    assert.equal(clustered.health.port, 0);
    assert.equal(clustered.auth.allowAnonymous, true);
    assert.ok(clustered.limits.maxQueuedMessages >= WARMUP_PLAN.backlog, 'room for the backlog step');
    const local = warmupConfig(defaultConfig(), '/tmp/skein-warmup-x');
    assert.equal(local.store.type, 'embedded');
    assert.equal(local.dataDir, '/tmp/skein-warmup-x');
  });

  it('runs every pass on an embedded store of its own and removes it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'skein-real-'));
    try {
      const real = defaultConfig();
      real.dataDir = dataDir;
      const before = warmupDirs();
      const r = await warmUp(real, 120_000);
      assert.equal(r.stoppedEarly, undefined, JSON.stringify(r));
      assert.equal(r.rounds.length, WARMUP_PASSES.length);
      r.rounds.forEach((rounds, i) => {
        assert.ok(rounds.length >= WARMUP_PASSES[i]!.min && rounds.length <= WARMUP_PASSES[i]!.max, JSON.stringify(r.rounds));
      });
      const totalRounds = r.rounds.reduce((n, x) => n + x.length, 0);
      assert.ok(r.delivered >= totalRounds * perRound(), `delivered ${r.delivered} for ${totalRounds} rounds`);
      assert.deepEqual(warmupDirs(), before, 'no warm-up directory left');
      assert.deepEqual(readdirSync(dataDir), [], "the real node's data directory is untouched");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a warm-up directory whose process is gone (V8 abort, kill -9) is removed at the next start; live ones and others are kept', () => {
    const parent = mkdtempSync(join(tmpdir(), 'skein-sweep-test-'));
    try {
      // A PID that has just exited (a short-lived child, waited for).
      const dead = spawnSync(process.execPath, ['-e', '0']).pid;
      assert.ok(dead !== undefined && dead > 0);
      const names = {
        dead: `skein-warmup-${dead}-aB3xYz`,
        mine: `skein-warmup-${process.pid}-Qw12Er`,
        parent: `skein-warmup-${process.ppid}-Zx98Cv`,
        other: 'skein-warmup-notapid-123456',
        file: `skein-warmup-${dead}-File01`,
      };
      for (const n of [names.dead, names.mine, names.parent, names.other]) {
        mkdirSync(join(parent, n, 'store'), { recursive: true });
        writeFileSync(join(parent, n, 'store', 'log'), 'x');
      }
      writeFileSync(join(parent, names.file), 'a file named like one');
      const removed = sweepStaleWarmupDirs(parent);
      // The dead process's directory and the file named like one go; the rest stay.
      assert.deepEqual(removed.sort(), [names.dead, names.file].sort());
      assert.deepEqual(readdirSync(parent).sort(), [names.mine, names.other, names.parent].sort());
      assert.deepEqual(sweepStaleWarmupDirs(parent), [], 'nothing more the second time');
      assert.deepEqual(sweepStaleWarmupDirs(join(parent, 'missing')), [], 'a missing directory is no error');
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('a pass followed by others starts no optional round that would end past its share of the limit', () => {
    const first = { min: 2, max: 8, optionalUntil: 6_000 };
    // Rounds up to min always start, whatever the time.
    assert.equal(mayStartRound(1, first, undefined, 9_000), true);
    assert.equal(mayStartRound(2, first, 2_000, 9_000), true);
    // An optional round starts only if one as long as the last ends by optionalUntil.
    assert.equal(mayStartRound(3, first, 1_500, 4_500), true);
    assert.equal(mayStartRound(3, first, 1_500, 4_501), false);
    // Never past max; no optionalUntil (the last pass): only the max.
    assert.equal(mayStartRound(9, first, 10, 0), false);
    assert.equal(mayStartRound(8, { min: 2, max: 8 }, 5_000, 1e15), true);
    assert.equal(mayStartRound(2, { min: 1, max: 1 }, 5, 0), false);
  });

  it('stops at its time limit with a reason, and still cleans up', async () => {
    const before = warmupDirs();
    const started = Date.now();
    const r = await warmUp(defaultConfig(), 300);
    assert.equal(r.stoppedEarly, 'out of time', JSON.stringify(r));
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    assert.deepEqual(warmupDirs(), before);
  });
});
