/**
 * Wills of a dead node's clients (design notes §2, invariant 5; MQTT-3.1.2-8, MQTT-3.1.3-9):
 * clients with wills on node a, a is SIGKILLed. Subscribers on nodes b and c receive each will
 * exactly once (the lease holder fires them), a delayed will not before its delay, and the will
 * of a client that resumes its session (through node b) within the delay is never published.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { JsClient, endAllJs, killAll, sleep } from '../interop/helpers.js';
import { startRedis } from '../testing/redis.js';
import { startClusterNode } from './testing.js';

after(async () => {
  await endAllJs();
  await killAll();
});

test('wills of a killed node fire once, after their delay, and not for resumed sessions', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const [a, b, c] = await Promise.all([startClusterNode('a', redisUrl), startClusterNode('b', redisUrl), startClusterNode('c', redisUrl)]);
  const url = (n: { port: number }) => `mqtt://127.0.0.1:${n.port}`;

  const watchB = await JsClient.connect(url(b), { clientId: 'will-watch-b', protocolVersion: 5 });
  const watchC = await JsClient.connect(url(c), { clientId: 'will-watch-c', protocolVersion: 4 });
  await watchB.subscribe('will/#', 1);
  await watchC.subscribe('will/#', 1);
  const arrivals = new Map<string, number[]>();
  for (const w of [watchB, watchC]) {
    w.client.on('message', (topic) => {
      const list = arrivals.get(`${w === watchB ? 'b' : 'c'} ${topic}`) ?? [];
      list.push(Date.now());
      arrivals.set(`${w === watchB ? 'b' : 'c'} ${topic}`, list);
    });
  }
  await sleep(300); // subscriptions known cluster-wide

  const will = (name: string, delay?: number) => ({
    topic: `will/${name}`,
    payload: Buffer.from(`${name} is gone`),
    qos: 1 as const,
    retain: false,
    properties: delay === undefined ? undefined : { willDelayInterval: delay },
  });
  const v5 = (clientId: string, delay: number, expiry: number) =>
    JsClient.connect(url(a), { clientId, protocolVersion: 5, will: will(clientId, delay), properties: expiry ? { sessionExpiryInterval: expiry } : undefined, keepalive: 60 });
  const clients = await Promise.all([
    v5('w-now', 0, 0), // will delay 0, session ends with the connection
    v5('w-delay2', 2, 60), // will delay 2 s, session expiry 60 s
    v5('w-back-early', 3, 60), // resumes through b before a is declared dead
    v5('w-back-late', 3, 60), // resumes through b after a's sessions were adopted
    JsClient.connect(url(a), { clientId: 'w-v311', protocolVersion: 4, will: will('w-v311'), keepalive: 60 }),
  ]);
  t.after(() => clients.forEach((x) => x.client.end(true)));

  const killedAt = Date.now();
  a.proc.kill('SIGKILL');
  await a.proc.waitExit(5000);
  for (const x of clients) x.client.end(true); // the sockets died with a; no reconnects

  await sleep(300);
  const early = await JsClient.connect(url(b), { clientId: 'w-back-early', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
  assert.equal(early.connack?.sessionPresent, true, 'w-back-early resumed its session');
  await sleep(2200 - (Date.now() - killedAt)); // a is dead (TTL 1.5 s) and adopted by now
  const late = await JsClient.connect(url(b), { clientId: 'w-back-late', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
  assert.equal(late.connack?.sessionPresent, true, 'w-back-late resumed its session');

  // Every will has had its chance: TTL 1.5 s + lease tick + will delay 3 s + margin.
  await sleep(Math.max(0, killedAt + 8000 - Date.now()));

  const count = (node: string, name: string) => arrivals.get(`${node} will/${name}`)?.length ?? 0;
  for (const node of ['b', 'c']) {
    assert.equal(count(node, 'w-now'), 1, `${node}: will of w-now exactly once`);
    assert.equal(count(node, 'w-delay2'), 1, `${node}: delayed will exactly once`);
    assert.equal(count(node, 'w-v311'), 1, `${node}: 3.1.1 will exactly once`);
    assert.equal(count(node, 'w-back-early'), 0, `${node}: will of a session resumed early not published`);
    assert.equal(count(node, 'w-back-late'), 0, `${node}: will of a session resumed within the delay not published`);
  }
  const delayed = arrivals.get('b will/w-delay2')![0]! - killedAt;
  t.diagnostic(`delayed will (2 s) arrived ${delayed} ms after the kill; immediate will ${arrivals.get('b will/w-now')![0]! - killedAt} ms`);
  assert.ok(delayed >= 2000, `delayed will not before its delay (${delayed} ms)`);
  const payload = watchB.messages.find((m) => m.topic === 'will/w-now')?.payload;
  assert.equal(payload, 'w-now is gone');
  await Promise.all([early.end(), late.end(), watchB.end(), watchC.end()]);
});
