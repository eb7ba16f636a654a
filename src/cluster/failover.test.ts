/**
 * Zero-loss failover through a real HAProxy and a real redis-server (design notes §2, invariants
 * 1, 2 and 4): numbered QoS 1 and QoS 2 publishers, persistent subscribers on another node, the
 * subscribers' node SIGKILLed mid-run, then the publishers' node. Every acknowledged message
 * reaches every subscriber, QoS 2 exactly once, in publisher order. Reports the recovery time.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { killAll, sleep, until } from '../interop/helpers.js';
import { startRedis } from '../testing/redis.js';
import { startClusterNode, startHaproxy } from './testing.js';

after(() => killAll());

interface Received {
  seqs: Map<string, number[]>;
  /** Set when the client connected again after the kill of its node. */
  resumedAt: number | undefined;
  /** Milliseconds from the kill to the first message on the resumed session. */
  firstAfter: number | undefined;
  reconnects: number;
  sessionLost?: boolean;
}

function subscriberClient(url: string, clientId: string, version: 4 | 5, rec: Received, since: () => number | undefined): MqttClient {
  const c = mqtt.connect(url, {
    clientId,
    protocolVersion: version,
    clean: false,
    properties: version === 5 ? { sessionExpiryInterval: 600 } : undefined,
    reconnectPeriod: 100,
    connectTimeout: 3000,
    keepalive: 5,
  });
  c.on('message', (topic, payload) => {
    const list = rec.seqs.get(topic) ?? [];
    list.push(Number(payload.toString()));
    rec.seqs.set(topic, list);
    const killedAt = since();
    if (killedAt !== undefined && rec.resumedAt !== undefined && rec.firstAfter === undefined) rec.firstAfter = Date.now() - killedAt;
  });
  c.on('connect', (connack) => {
    rec.reconnects++;
    if (since() !== undefined && rec.resumedAt === undefined) {
      rec.resumedAt = Date.now();
      // The session survived the death of its node [MQTT-3.2.2-3].
      if (!connack.sessionPresent) rec.sessionLost = true;
    }
  });
  c.on('error', () => undefined);
  return c;
}

test('failover: SIGKILL of the subscribers\' node, then of the publishers\' node, loses no acknowledged message', { timeout: 150_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const a = await startClusterNode('a', redisUrl);
  const b = await startClusterNode('b', redisUrl);
  const c = await startClusterNode('c', redisUrl);
  // Subscribers enter on a, publishers on b; the others are backups the LB fails over to.
  const lb = await startHaproxy([
    { name: 'subs', servers: [{ name: 'a', port: a.port }, { name: 'b', port: b.port, backup: true }, { name: 'c', port: c.port, backup: true }] },
    { name: 'pubs', servers: [{ name: 'b', port: b.port }, { name: 'c', port: c.port, backup: true }, { name: 'a', port: a.port, backup: true }] },
  ]);
  const subsUrl = `mqtt://127.0.0.1:${lb.ports.subs}`;
  const pubsUrl = `mqtt://127.0.0.1:${lb.ports.pubs}`;

  let killedAt: number | undefined;
  const recs: Received[] = [];
  const subs: MqttClient[] = [];
  for (const [i, v] of [[0, 5], [1, 4]] as const) {
    const rec: Received = { seqs: new Map(), resumedAt: undefined, firstAfter: undefined, reconnects: 0 };
    recs.push(rec);
    const s = subscriberClient(subsUrl, `fo-sub-${i}`, v, rec, () => killedAt);
    subs.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    await s.subscribeAsync('fo/#', { qos: 2 });
  }
  t.after(() => subs.forEach((s) => s.end(true)));

  const N = 300;
  const acked: Record<string, number[]> = { 'fo/q1': [], 'fo/q2': [] };
  const publishErrors: string[] = [];
  const pubs: MqttClient[] = [];
  for (const [topic, qos] of [['fo/q1', 1], ['fo/q2', 2]] as const) {
    const p = mqtt.connect(pubsUrl, {
      clientId: `fo-pub-${qos}`,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
      reconnectPeriod: 100,
      connectTimeout: 3000,
      keepalive: 5,
    });
    p.on('error', () => undefined);
    await new Promise<void>((resolve) => p.once('connect', () => resolve()));
    pubs.push(p);
    void (async () => {
      // A window of 10 publishes in flight; each resolves when PUBACK / PUBCOMP arrives.
      let next = 1;
      const inflight = new Set<Promise<void>>();
      while (next <= N) {
        while (inflight.size < 10 && next <= N) {
          const seq = next++;
          const pr: Promise<void> = p
            .publishAsync(topic, String(seq), { qos })
            .then(() => {
              acked[topic]!.push(seq);
            })
            .catch((err: Error) => {
              publishErrors.push(`${topic} ${seq}: ${err.message}`);
            })
            .finally(() => inflight.delete(pr));
          inflight.add(pr);
        }
        await Promise.race(inflight);
        await sleep(2);
      }
      await Promise.all(inflight);
    })();
  }
  t.after(() => pubs.forEach((p) => p.end(true)));

  const ackedCount = () => acked['fo/q1']!.length + acked['fo/q2']!.length;
  await until(() => ackedCount() >= N * 2 * 0.3, 30_000, 'first third acknowledged');
  killedAt = Date.now();
  a.proc.kill('SIGKILL'); // the subscribers' node
  await until(() => ackedCount() >= N * 2 * 0.6, 40_000, 'second third acknowledged');
  b.proc.kill('SIGKILL'); // the publishers' node
  await until(() => ackedCount() + publishErrors.length >= N * 2, 60_000, `all acknowledged (have ${ackedCount()})`).catch((err) => {
    for (const n of [a, b, c]) t.diagnostic(`node ${n.id} stderr:\n${n.proc.stderr.slice(-3000)}`);
    throw err;
  });

  assert.deepEqual(publishErrors, [], 'every publish is acknowledged positively');
  // Every acknowledged message must arrive at every subscriber.
  const complete = () =>
    recs.every((r) => ['fo/q1', 'fo/q2'].every((topic) => acked[topic]!.every((s) => (r.seqs.get(topic) ?? []).includes(s))));
  await until(complete, 30_000, 'subscribers received every acknowledged message').catch(() => undefined);

  for (const [i, r] of recs.entries()) {
    for (const topic of ['fo/q1', 'fo/q2']) {
      const got = r.seqs.get(topic) ?? [];
      const missing = acked[topic]!.filter((s) => !got.includes(s));
      assert.deepEqual(missing, [], `subscriber ${i} ${topic}: acknowledged messages lost`);
      // Order per publisher: first arrivals in increasing order [MQTT-4.6.0-5].
      const firsts = got.filter((s, k) => got.indexOf(s) === k);
      assert.deepEqual(firsts, [...firsts].sort((x, y) => x - y), `subscriber ${i} ${topic}: order`);
    }
    const q2 = r.seqs.get('fo/q2') ?? [];
    assert.equal(new Set(q2).size, q2.length, `subscriber ${i}: QoS 2 duplicates`);
    assert.ok(r.resumedAt !== undefined, `subscriber ${i} reconnected after the kill of its node`);
    assert.notEqual(r.sessionLost, true, `subscriber ${i}: session present after failover`);
    assert.ok(r.firstAfter !== undefined, `subscriber ${i} received on the resumed session`);
    t.diagnostic(`subscriber ${i}: recovery (kill of its node to first message on the resumed session) ${r.firstAfter} ms`);
  }
  t.diagnostic(`acknowledged: ${acked['fo/q1']!.length} QoS 1 + ${acked['fo/q2']!.length} QoS 2`);
});
