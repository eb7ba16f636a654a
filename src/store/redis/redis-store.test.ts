/**
 * RedisStore against real redis-server processes (127.0.0.1, random ports, killed by PID):
 * the contract suite standalone (memory, fsync) and through Sentinel (replicated), then fencing
 * across two nodes, WAIT and fsync refusals, bounded failures and reconnection, the cost model, and
 * a Sentinel failover under load in which no resolved commit may be lost.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { storeContract } from '../contract/suite.js';
import { assertStale, message, record, sub } from '../contract/fixtures.js';
import { StaleEpochError, StoreError } from '../types.js';
import { startRedis, startSentinel, type RedisProcess } from '../../testing/redis.js';
import { RedisStore, type RedisStoreOptions } from './redis-store.js';

const quiet = { warn: () => undefined, info: () => undefined };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const processes: RedisProcess[] = [];
const clients: Redis[] = [];
after(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  for (const p of processes.splice(0).reverse()) await p.stop();
});

async function redis(opts: Parameters<typeof startRedis>[0] = {}): Promise<RedisProcess> {
  const p = await startRedis(opts);
  processes.push(p);
  return p;
}

/** A plain client for assertions and cleanup (not the code under test). */
function admin(p: { host: string; port: number }): Redis {
  const c = new Redis({ host: p.host, port: p.port, lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

function lazy<T>(make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= make());
}

let prefixCounter = 0;
const freshPrefix = (): string => `t${process.pid}-${++prefixCounter}:`;

async function waitFor(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

async function replicationUp(replica: Redis): Promise<boolean> {
  return (await replica.info('replication')).includes('master_link_status:up');
}

interface Group {
  primary: RedisProcess;
  replicas: RedisProcess[];
  sentinel: RedisProcess & { name: string };
}

/** A primary, `n` replicas in sync, then one Sentinel that knows them all. */
async function sentinelGroup(n: number): Promise<Group> {
  const primary = await redis();
  const replicas: RedisProcess[] = [];
  for (let i = 0; i < n; i++) replicas.push(await redis({ replicaOf: primary }));
  for (const r of replicas) await waitFor('replica sync', 10_000, () => replicationUp(admin(r)));
  const sentinel = await startSentinel(primary, { downAfterMs: 1000, quorum: 1 });
  processes.push(sentinel);
  const s = admin(sentinel);
  await waitFor('sentinel to see the replicas', 15_000, async () => ((await s.call('SENTINEL', 'REPLICAS', sentinel.name)) as unknown[]).length === n);
  return { primary, replicas, sentinel };
}

// ---- the contract, three ways ----

const standalone = lazy(() => redis());
storeContract('RedisStore (standalone, memory)', async () => {
  const p = await standalone();
  const opts: RedisStoreOptions = { url: `redis://${p.host}:${p.port}`, keyPrefix: freshPrefix(), durability: 'memory', logger: quiet };
  return { store: new RedisStore(opts), reopen: async () => new RedisStore(opts), cleanup: async () => void (await admin(p).flushall()) };
}, { durable: true });

const aof = lazy(() => redis({ appendfsync: 'always' }));
storeContract('RedisStore (standalone, fsync)', async () => {
  const p = await aof();
  const opts: RedisStoreOptions = { url: `redis://${p.host}:${p.port}`, keyPrefix: freshPrefix(), durability: 'fsync', logger: quiet };
  return { store: new RedisStore(opts), reopen: async () => new RedisStore(opts), cleanup: async () => void (await admin(p).flushall()) };
}, { durable: true });

const sentinelled = lazy(() => sentinelGroup(1));
storeContract('RedisStore (Sentinel, replicated)', async () => {
  const g = await sentinelled();
  const opts: RedisStoreOptions = {
    sentinels: [{ host: g.sentinel.host, port: g.sentinel.port }],
    sentinelName: g.sentinel.name,
    keyPrefix: freshPrefix(),
    durability: 'replicated',
    replicas: 1,
    logger: quiet,
  };
  return { store: new RedisStore(opts), reopen: async () => new RedisStore(opts), cleanup: async () => void (await admin(g.primary).flushall()) };
}, { durable: true });

// ---- beyond the contract ----

describe('RedisStore', () => {
  const open: RedisStore[] = [];
  async function store(opts: Partial<RedisStoreOptions> & { url: string }): Promise<RedisStore> {
    const s = new RedisStore({ durability: 'memory', keyPrefix: freshPrefix(), logger: quiet, ...opts });
    await s.open();
    open.push(s);
    return s;
  }
  after(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  test('key layout: every key of a session shares the hash tag {c:<clientId>}', async () => {
    const p = await standalone();
    const prefix = freshPrefix();
    const s = await store({ url: `redis://${p.host}:${p.port}`, keyPrefix: prefix });
    const id = 'dev/42}x';
    const { epoch } = await s.takeSession(record(id), false);
    await s.addSubscriptions(id, epoch, [sub('a/#')]);
    const { seqs } = await s.commitPublish({ message: message('a/1', 'x', { retain: true }), deliveries: [{ clientId: id, qos: 1, retain: false }], retain: 'set' });
    await s.markSent(id, epoch, seqs[0]!, 7);
    await s.addIncomingQos2(id, epoch, 3);
    const keys = (await admin(p).keys(`${prefix}*`)).sort();
    const tag = `${prefix}{c:${id}}:`;
    assert.deepEqual(keys.filter((k) => k.startsWith(tag)).map((k) => k.slice(tag.length)).sort(), ['i', 'p', 'q', 's', 'sub']);
    assert.deepEqual(keys.filter((k) => !k.startsWith(tag)).map((k) => k.slice(prefix.length).replace(/^m:.*/, 'm:<id>')).sort(), ['epoch', 'm:<id>', 'retained', 'sessions']);
    // Completing the only delivery removes the message body too; so do drops, clean takeovers and deletes.
    await s.completeDelivery(id, epoch, 7);
    assert.equal((await admin(p).keys(`${prefix}m:*`)).length, 0);
    await s.takeSession(record('other'), false);
    const two = [{ clientId: id, qos: 1 as const, retain: false }, { clientId: 'other', qos: 1 as const, retain: false }];
    const r1 = await s.commitPublish({ message: message('a/2'), deliveries: two });
    await s.commitPublish({ message: message('a/3'), deliveries: two });
    await s.commitPublish({ message: message('a/4'), deliveries: two });
    await s.dropDeliveries(id, epoch, [r1.seqs[0]!]);
    assert.equal((await admin(p).keys(`${prefix}m:*`)).length, 3);
    await s.takeSession(record('other'), true);
    assert.equal((await admin(p).keys(`${prefix}m:*`)).length, 2);
    await s.deleteSession(id);
    assert.deepEqual((await admin(p).keys(`${prefix}*`)).filter((k) => k.includes('m:') || k.includes(`{c:${id}}`)), []);
  });

  test('fencing across two nodes: B takes the session, A\'s writes with the old epoch are refused', async () => {
    const p = await standalone();
    const prefix = freshPrefix();
    const url = `redis://${p.host}:${p.port}`;
    const nodeA = await store({ url, keyPrefix: prefix });
    const nodeB = await store({ url, keyPrefix: prefix });
    const a = await nodeA.takeSession(record('dev', { nodeId: 'node-a' }), false);
    await nodeA.addSubscriptions('dev', a.epoch, [sub('t/#')]);
    const first = await nodeA.commitPublish({ message: message('t/1'), deliveries: [{ clientId: 'dev', qos: 1, retain: false }] });
    await nodeA.markSent('dev', a.epoch, first.seqs[0]!, 1);

    const b = await nodeB.takeSession(record('dev', { nodeId: 'node-b' }), false);
    assert.ok(b.epoch > a.epoch);
    assert.deepEqual(b.previous?.deliveries.map((d) => [d.phase, d.packetId]), [['sent', 1]]);
    const before = await nodeB.getSession('dev');

    // A paused node wakes up and keeps writing: every write is refused, nothing changes.
    await assertStale(nodeA.addSubscriptions('dev', a.epoch, [sub('evil/#')]), 'dev', a.epoch, b.epoch);
    await assertStale(nodeA.completeDelivery('dev', a.epoch, 1), 'dev', a.epoch, b.epoch);
    await assertStale(nodeA.updateSession(record('dev', { nodeId: 'node-a' }), a.epoch), 'dev', a.epoch, b.epoch);
    await assertStale(nodeA.deleteSession('dev', a.epoch), 'dev', a.epoch, b.epoch);
    await assertStale(
      nodeA.commitPublish({ message: message('t/2', 'x', { qos: 2 }), deliveries: [{ clientId: 'dev', qos: 2, retain: false }], incomingQos2: { clientId: 'dev', epoch: a.epoch, packetId: 5 } }),
      'dev',
      a.epoch,
      b.epoch,
    );
    assert.deepEqual(await nodeA.getSession('dev'), before);

    // B works; A can take it back only through a new takeover (new epoch).
    await nodeB.completeDelivery('dev', b.epoch, 1);
    assert.deepEqual((await nodeA.getSession('dev'))?.deliveries, []);
    const again = await nodeA.takeSession(record('dev', { nodeId: 'node-a' }), false);
    assert.ok(again.epoch > b.epoch);
    await assert.rejects(nodeB.addIncomingQos2('dev', b.epoch, 1), StaleEpochError);
  });

  test('two nodes racing takeovers: exactly one holder wins each round, epochs never repeat', async () => {
    const p = await standalone();
    const prefix = freshPrefix();
    const url = `redis://${p.host}:${p.port}`;
    const nodes = [await store({ url, keyPrefix: prefix }), await store({ url, keyPrefix: prefix })];
    const seen = new Set<number>();
    for (let round = 0; round < 20; round++) {
      const taken = await Promise.all(nodes.map((n, i) => n.takeSession(record('hot', { nodeId: `node-${i}` }), round % 3 === 0)));
      for (const t of taken) {
        assert.ok(!seen.has(t.epoch));
        seen.add(t.epoch);
      }
      const results = await Promise.allSettled(nodes.map((n, i) => n.addIncomingQos2('hot', taken[i]!.epoch, round + 1)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `round ${round}`);
    }
  });

  test('replicated: a WAIT that confirms fewer replicas than asked rejects the write', async () => {
    const p = await standalone();
    const s = await store({ url: `redis://${p.host}:${p.port}`, durability: 'replicated', replicas: 1, waitTimeoutMs: 100 });
    const started = Date.now();
    await assert.rejects(s.takeSession(record('c'), false), (err: unknown) => err instanceof StoreError && /replication not confirmed: 0 of 1/.test(err.message));
    assert.ok(Date.now() - started < 2000);
    // Reads do not wait for replicas.
    assert.ok(await s.getSession('c'));
    assert.equal(s.stats.replicationFailures, 1);
  });

  test('fsync refuses to open on a server without appendonly yes + appendfsync always', async () => {
    const p = await standalone();
    const s = new RedisStore({ url: `redis://${p.host}:${p.port}`, durability: 'fsync', logger: quiet });
    await assert.rejects(s.open(), (err: unknown) => err instanceof StoreError && /appendonly yes and appendfsync always/.test(err.message) && /appendonly no/.test(err.message));
    const everysec = await redis({ appendfsync: 'everysec' });
    const t = new RedisStore({ url: `redis://${everysec.host}:${everysec.port}`, durability: 'fsync', logger: quiet });
    await assert.rejects(t.open(), /appendfsync everysec/);
    await everysec.stop();
  });

  test('open fails with a StoreError within its bound when Redis is unreachable', async () => {
    const dead = await redis();
    await dead.stop();
    const s = new RedisStore({ url: `redis://127.0.0.1:${dead.port}`, durability: 'memory', connectTimeoutMs: 1000, logger: quiet });
    const started = Date.now();
    await assert.rejects(s.open(), StoreError);
    assert.ok(Date.now() - started < 2500, `took ${Date.now() - started} ms`);
  });

  test('Redis down: operations reject with StoreError (with cause) within the bound; back up: works again', async () => {
    const p = await redis();
    const s = await store({ url: `redis://${p.host}:${p.port}`, commandTimeoutMs: 1000 });
    const { epoch } = await s.takeSession(record('c'), false);

    // A frozen server (SIGSTOP): the command is sent but never answered.
    process.kill(p.pid, 'SIGSTOP');
    let started = Date.now();
    await assert.rejects(s.addIncomingQos2('c', epoch, 1), (err: unknown) => err instanceof StoreError && /no answer from Redis within|timed out/.test(err.message));
    const frozenMs = Date.now() - started;
    assert.ok(frozenMs < 1600, `rejected after ${frozenMs} ms`);
    process.kill(p.pid, 'SIGCONT');
    await waitFor('store to answer again', 10_000, async () => (await s.getSession('c')) !== undefined);

    // A dead server: commands fail at once (no offline queue), with the ioredis error as cause.
    const port = p.port;
    await p.kill9();
    await p.stop();
    await sleep(50);
    started = Date.now();
    const err = await s.getSession('c').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StoreError, `got ${String(err)}`);
    assert.ok(err.cause !== undefined || /lost|no answer/.test(err.message), err.message);
    assert.ok(Date.now() - started < 1600);
    const many = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => s.takeSession(record(`x${i}`), false)));
    assert.ok(many.every((r) => r.status === 'rejected' && r.reason instanceof StoreError));
    assert.ok(Date.now() - started < 1600);

    // Back on the same port (empty: that server had no persistence); the store reconnects by itself.
    const back = await redis({ port });
    assert.equal(back.port, port);
    await waitFor('store to reconnect', 10_000, async () => (await s.takeSession(record('c'), false)).epoch > 0);
    const again = await s.takeSession(record('d'), false);
    await s.commitPublish({ message: message('t'), deliveries: [{ clientId: 'd', qos: 1, retain: false }] });
    assert.equal((await s.getSession('d'))?.epoch, again.epoch);
    assert.equal((await s.getSession('d'))?.deliveries.length, 1);
  });

  test('cost model: commands and round trips per message, per ack, per subscribe', async (t) => {
    const p = await standalone();
    const s = await store({ url: `redis://${p.host}:${p.port}` });
    const a = admin(p);
    const N = 10;
    const epochs: number[] = [];
    for (let i = 0; i < N; i++) epochs.push((await s.takeSession(record(`sub${i}`), false)).epoch);

    /** Runs `fn`, returns client commands, round trips and server-side command counts. */
    async function measure(fn: () => Promise<unknown>): Promise<{ commands: number; roundTrips: number; server: Record<string, number> }> {
      const stat = async (): Promise<Record<string, number>> => {
        const out: Record<string, number> = {};
        for (const line of (await a.info('commandstats')).split('\n')) {
          const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
          if (m) out[m[1]!] = Number(m[2]);
        }
        return out;
      };
      const before = await stat();
      const c0 = s.stats;
      await fn();
      const c1 = s.stats;
      const after = await stat();
      const server: Record<string, number> = {};
      for (const [k, v] of Object.entries(after)) {
        const d = v - (before[k] ?? 0);
        if (d > 0 && k !== 'info') server[k] = d;
      }
      return { commands: c1.commands - c0.commands, roundTrips: c1.roundTrips - c0.roundTrips, server };
    }

    // Warm the script cache of this connection (EVAL once, EVALSHA after).
    await s.commitPublish({ message: message('warm'), deliveries: [{ clientId: 'sub0', qos: 1, retain: false }] });
    await s.markSent('sub0', epochs[0]!, (await s.getSession('sub0'))!.deliveries[0]!.seq, 1);
    await s.completeDelivery('sub0', epochs[0]!, 1);
    await s.addSubscriptions('sub0', epochs[0]!, [sub('warm')]);

    const publish = await measure(() => s.commitPublish({ message: message('t', 'x'.repeat(100)), deliveries: Array.from({ length: N }, (_, i) => ({ clientId: `sub${i}`, qos: 1 as const, retain: false })) }));
    const seqs = await Promise.all(Array.from({ length: N }, async (_, i) => (await s.getSession(`sub${i}`))!.deliveries[0]!.seq));
    const sent = await measure(() => Promise.all(seqs.map((seq, i) => s.markSent(`sub${i}`, epochs[i]!, seq, 5))));
    const acked = await measure(() => Promise.all(seqs.map((_, i) => s.completeDelivery(`sub${i}`, epochs[i]!, 5))));
    const subscribe = await measure(() => s.addSubscriptions('sub1', epochs[1]!, [sub('a/+'), sub('b/#')]));
    const burst = await measure(() => Promise.all(Array.from({ length: 100 }, (_, i) => s.commitPublish({ message: message(`t/${i}`), deliveries: [{ clientId: 'sub2', qos: 1, retain: false }] }))));

    t.diagnostic(`QoS 1 publish to ${N} persistent subscribers: ${JSON.stringify(publish)}`);
    t.diagnostic(`${N} outbound PUBLISH (markSent) in one turn: ${JSON.stringify(sent)}`);
    t.diagnostic(`${N} PUBACK (completeDelivery) in one turn: ${JSON.stringify(acked)}`);
    t.diagnostic(`SUBSCRIBE with 2 filters: ${JSON.stringify(subscribe)}`);
    t.diagnostic(`100 publishes issued in one turn: ${JSON.stringify(burst)}`);

    assert.deepEqual([publish.commands, publish.roundTrips], [1, 1]);
    assert.deepEqual(publish.server['evalsha'], 1);
    assert.deepEqual([sent.commands, sent.roundTrips], [N, 1]);
    assert.deepEqual([acked.commands, acked.roundTrips], [N, 1]);
    assert.deepEqual([subscribe.commands, subscribe.roundTrips], [1, 1]);
    assert.deepEqual([burst.commands, burst.roundTrips], [100, 1]);
  });
});

// ---- failover ----

describe('RedisStore through Sentinel', () => {
  test('failover under load (replicated): kill -9 the primary mid-run, every resolved commit is on the new primary', { timeout: 90_000 }, async (t) => {
    const g = await sentinelGroup(2);
    const sentinel = admin(g.sentinel);
    const prefix = freshPrefix();
    const s = new RedisStore({
      sentinels: [{ host: g.sentinel.host, port: g.sentinel.port }],
      sentinelName: g.sentinel.name,
      keyPrefix: prefix,
      durability: 'replicated',
      replicas: 1,
      waitTimeoutMs: 1000,
      commandTimeoutMs: 1000,
      logger: quiet,
    });
    await s.open();
    try {
      // Setup, retried like the loop below: a loaded machine can miss one WAIT.
      await waitFor('the session to be created', 10_000, async () => (await s.takeSession(record('sub', { expiryInterval: 0xffffffff }), false)).epoch > 0);

      const TOTAL = 600;
      const KILL_AT = 150;
      const WINDOW = 8;
      const deadline = Date.now() + 60_000;
      const resolved = new Set<number>();
      const retry: number[] = [];
      let next = 0;
      let rejections = 0;
      let attempts = 0;
      let killedAt = 0;
      let firstAfterKill = 0;
      let killing: Promise<void> | undefined;
      while (resolved.size < TOTAL && Date.now() < deadline && attempts < 20_000) {
        const round: number[] = [];
        while (round.length < WINDOW && (retry.length > 0 || next < TOTAL)) round.push(retry.length > 0 ? retry.shift()! : next++);
        attempts += round.length;
        // Kill -9 the primary while this round is in flight (some commits sent, some answered).
        if (!killing && resolved.size >= KILL_AT) {
          killedAt = Date.now();
          killing = sleep(1).then(() => g.primary.kill9());
        }
        const results = await Promise.allSettled(
          round.map((n) => s.commitPublish({
            message: { id: `m-${n}`, topic: 'load/t', payload: Buffer.from(`payload ${n}`), qos: 1, retain: false, createdAt: Date.now() },
            deliveries: [{ clientId: 'sub', qos: 1, retain: false }],
          })),
        );
        let failed = false;
        results.forEach((r, i) => {
          if (r.status === 'fulfilled' && r.value.seqs[0]! > 0) {
            resolved.add(round[i]!);
            if (killedAt && !firstAfterKill && Date.now() - killedAt > 100) firstAfterKill = Date.now();
          } else {
            if (r.status === 'rejected') assert.ok(r.reason instanceof StoreError, `unexpected ${String(r.reason)}`);
            retry.push(round[i]!);
            rejections += 1;
            failed = true;
          }
        });
        if (failed) await sleep(50); // like a publisher's retry delay
      }
      await killing;
      t.diagnostic(`resolved ${resolved.size}/${TOTAL}, attempts ${attempts}, rejections ${rejections}, writes resumed ${firstAfterKill - killedAt} ms after kill -9; store stats ${JSON.stringify(s.stats)}`);
      assert.ok(killedAt > 0, 'the primary was killed');
      assert.equal(resolved.size, TOTAL, 'every publish eventually resolved');

      const [host, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', g.sentinel.name)) as [string, string];
      assert.notEqual(Number(port), g.primary.port, 'Sentinel promoted a replica');
      assert.ok(g.replicas.some((r) => r.port === Number(port)));
      const check = new RedisStore({ url: `redis://${host}:${port}`, keyPrefix: prefix, durability: 'memory', logger: quiet });
      await check.open();
      try {
        const snap = await check.getSession('sub');
        const present = new Set(snap!.deliveries.map((d) => d.message.id));
        const missing = [...resolved].filter((n) => !present.has(`m-${n}`));
        assert.deepEqual(missing, [], 'resolved commits missing on the new primary');
        const seqs = snap!.deliveries.map((d) => d.seq);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
      } finally {
        await check.close();
      }
    } finally {
      await s.close();
    }
  });
});
