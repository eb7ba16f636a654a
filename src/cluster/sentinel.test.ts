/**
 * Redis primary failover under load (design notes §2, invariant 1; store README "Durability
 * levels"): a Redis primary with two replicas and a Sentinel, two `skein start` nodes reaching it
 * through the Sentinel with `durability: replicated`. A QoS 1 publisher with numbered payloads on
 * node a, a persistent subscriber on node b; the primary is SIGKILLed mid-run and Sentinel
 * promotes a replica. Publishing resumes (MQTT.js re-sends what was not acknowledged) and every
 * acknowledged message reaches the subscriber.
 *
 * Two replicas, as the README advises for `replicas: 1`: after the promotion the new primary still
 * has a replica to confirm writes (`WAIT`), otherwise every write would be refused.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { killAll, sleep, until, within } from '../interop/helpers.js';
import { startRedis, startSentinel } from '../testing/redis.js';
import { startClusterNode } from './testing.js';

after(() => killAll());

test('sentinel: the Redis primary dies mid-run, a replica is promoted, no acknowledged message is lost', { timeout: 85_000 }, async (t) => {
  const primary = await startRedis();
  t.after(() => primary.stop());
  const replicas = await Promise.all([startRedis({ replicaOf: primary }), startRedis({ replicaOf: primary })]);
  t.after(() => Promise.all(replicas.map((r) => r.stop())));
  const sentinel = await startSentinel(primary, { name: 'skein-t', downAfterMs: 1000 });
  t.after(() => sentinel.stop());
  const sq = new Redis({ host: '127.0.0.1', port: sentinel.port, lazyConnect: true, maxRetriesPerRequest: 1 });
  await sq.connect();
  t.after(() => sq.disconnect());
  // Sentinel must know both replicas (and they must be in sync) before the primary may die.
  for (const deadline = Date.now() + 20_000; ; ) {
    const list = (await sq.call('SENTINEL', 'REPLICAS', 'skein-t')) as string[][];
    const ok = list.filter((r) => {
      const m = new Map<string, string>();
      for (let i = 0; i < r.length; i += 2) m.set(r[i]!, r[i + 1]!);
      return m.get('flags') === 'slave' && m.get('master-link-status') === 'ok';
    });
    if (ok.length === 2) break;
    if (Date.now() > deadline) throw new Error(`sentinel does not see 2 healthy replicas: ${JSON.stringify(list)}`);
    await sleep(200);
  }

  const args = ['--sentinels', `127.0.0.1:${sentinel.port}`, '--sentinel-name', 'skein-t'];
  const env = { SKEIN_CLUSTER__DURABILITY: 'replicated' };
  const [a, b] = await Promise.all([startClusterNode('a', '', { redisArgs: args, env }), startClusterNode('b', '', { redisArgs: args, env })]);

  /** Persistent v5 client options; a node cut off from Redis refuses CONNECT (0x88), so keep
   *  retrying (MQTT.js stops after a refused CONNACK otherwise). */
  const persistentClient = (clientId: string) => ({
    clientId,
    protocolVersion: 5 as const,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 200,
    reconnectOnConnackError: true,
    connectTimeout: 3000,
  });
  const received: number[] = [];
  const sub: MqttClient = mqtt.connect(`mqtt://127.0.0.1:${b.port}`, persistentClient('sn-sub'));
  t.after(() => sub.end(true));
  sub.on('error', () => undefined);
  sub.on('message', (_t, p) => received.push(Number(p.toString())));
  await within(new Promise<void>((r) => sub.once('connect', () => r())), 8000, 'subscriber connect');
  await within(sub.subscribeAsync('sn/q1', { qos: 1 }), 5000, 'subscribe');
  await sleep(300);

  const pub: MqttClient = mqtt.connect(`mqtt://127.0.0.1:${a.port}`, persistentClient('sn-pub'));
  t.after(() => pub.end(true));
  pub.on('error', () => undefined);
  await within(new Promise<void>((r) => pub.once('connect', () => r())), 8000, 'publisher connect');

  const N = 300;
  const acked = new Set<number>();
  const failed: string[] = [];
  let next = 1;
  const publishing = (async () => {
    const inflight = new Set<Promise<void>>();
    const deadline = Date.now() + 40_000;
    while (next <= N && Date.now() < deadline) {
      while (inflight.size < 5 && next <= N) {
        const seq = next++;
        const pr: Promise<void> = pub
          .publishAsync('sn/q1', String(seq), { qos: 1 })
          .then(() => void acked.add(seq))
          .catch((err: Error) => void failed.push(`${seq}: ${err.message}`))
          .finally(() => inflight.delete(pr));
        inflight.add(pr);
      }
      await Promise.race(inflight);
      await sleep(10);
    }
    await Promise.all(inflight);
  })();

  await until(() => acked.size >= 60, 20_000, 'first messages acknowledged');
  const killedAt = Date.now();
  await primary.kill9();
  // Sentinel promotes one of the replicas.
  let promoted: string[] | null = null;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(100)) {
    promoted = (await sq.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'skein-t')) as string[] | null;
    if (promoted && Number(promoted[1]) !== primary.port) break;
  }
  assert.ok(promoted && Number(promoted[1]) !== primary.port, `sentinel promoted a replica (${JSON.stringify(promoted)})`);
  t.diagnostic(`replica ${promoted![1]} promoted ${Date.now() - killedAt} ms after the kill`);
  const ackedAtKill = acked.size;

  await within(publishing, 65_000, 'publishing finished').catch((err) => {
    t.diagnostic(`acknowledged ${acked.size}, failed ${failed.length}, next ${next}`);
    for (const n of [a, b]) t.diagnostic(`node ${n.id} stderr:\n${n.proc.stderr.slice(-4000)}`);
    if (process.env.CLUSTER_TEST_DUMP) for (const n of [a, b]) writeFileSync(`${process.env.CLUSTER_TEST_DUMP}-${n.id}.log`, n.proc.stderr);
    throw err;
  });
  t.diagnostic(`acknowledged ${acked.size}/${N} (${ackedAtKill} before the kill), failed ${failed.length}`);
  assert.ok(acked.size > ackedAtKill + 50, `publishing resumed after the failover (${acked.size} acknowledged, ${ackedAtKill} at the kill)`);
  assert.equal(acked.size + failed.length, N, 'every publish settled');
  await until(() => [...acked].every((s) => received.includes(s)), 20_000, 'every acknowledged message delivered').catch(() => undefined);
  const missing = [...acked].filter((s) => !received.includes(s)).sort((x, y) => x - y);
  assert.deepEqual(missing, [], `acknowledged messages lost (received ${new Set(received).size} distinct)`);
  // Per-publisher order of first arrivals [MQTT-4.6.0-5].
  const firsts = received.filter((s, k) => received.indexOf(s) === k);
  assert.deepEqual(firsts, [...firsts].sort((x, y) => x - y), 'order');
});
