/**
 * Shared subscriptions across nodes [MQTT-4.8.2]: `$share/g/sh/t` with two members on node a and
 * two on node b, 200 QoS 1 messages published on node c. Each message goes to exactly one member
 * of the group cluster-wide and all 200 arrive; a non-shared subscriber gets all 200 as well.
 * With a's members gone, b's members get everything.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { JsClient, endAllJs, killAll, sleep, until } from '../interop/helpers.js';
import { startRedis } from '../testing/redis.js';
import { startClusterNode } from './testing.js';

after(async () => {
  await endAllJs();
  await killAll();
});

test('shared subscription: one member per message cluster-wide, all delivered', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const [a, b, c] = await Promise.all([startClusterNode('a', redisUrl), startClusterNode('b', redisUrl), startClusterNode('c', redisUrl)]);
  const url = (n: { port: number }) => `mqtt://127.0.0.1:${n.port}`;

  const members: JsClient[] = [];
  for (const [node, i, v] of [[a, 1, 5], [a, 2, 4], [b, 3, 5], [b, 4, 4]] as const) {
    const m = await JsClient.connect(url(node), { clientId: `sh-m${i}`, protocolVersion: v });
    await m.subscribe('$share/g/sh/t', 1);
    members.push(m);
  }
  const plain = await JsClient.connect(url(b), { clientId: 'sh-plain', protocolVersion: 5 });
  await plain.subscribe('sh/t', 1);
  await sleep(300); // subscriptions known cluster-wide

  const pub = await JsClient.connect(url(c), { clientId: 'sh-pub', protocolVersion: 5 });
  const N = 200;
  const publishAll = async (from: number) => {
    // Ten at a time (within the broker's Receive Maximum).
    for (let i = from; i < from + N; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, k) => pub.publish('sh/t', String(i + k), 1)));
    }
  };
  const payloads = (list: JsClient[]) => list.flatMap((m) => m.messages.map((x) => Number(x.payload)));

  await publishAll(0);
  await until(() => payloads(members).length >= N && plain.messages.length >= N, 10_000, `first round delivered (${payloads(members).length}, ${plain.messages.length})`).catch(() => undefined);
  await sleep(300); // duplicates, if any, would show up
  const first = payloads(members).sort((x, y) => x - y);
  assert.deepEqual(first, Array.from({ length: N }, (_, i) => i), 'each message to exactly one group member, all delivered');
  const perMember = members.map((m) => m.messages.length);
  t.diagnostic(`per member: ${perMember.join(', ')}`);
  assert.ok(perMember[0]! + perMember[1]! > 0 && perMember[2]! + perMember[3]! > 0, `both nodes' members get messages (${perMember})`);
  assert.deepEqual(plain.messages.map((m) => Number(m.payload)).sort((x, y) => x - y), Array.from({ length: N }, (_, i) => i), 'the non-shared subscriber gets all');

  // a's members leave: b's members get everything.
  await Promise.all([members[0]!.end(), members[1]!.end()]);
  await sleep(500); // their sessions' end reaches c through the change feed
  await publishAll(N);
  const second = () => payloads(members.slice(2)).filter((x) => x >= N);
  await until(() => second().length >= N, 10_000, `second round delivered to b's members (${second().length})`).catch(() => undefined);
  await sleep(300);
  assert.deepEqual(second().sort((x, y) => x - y), Array.from({ length: N }, (_, i) => N + i), "b's members get every message, once");
  assert.equal(plain.messages.length, 2 * N, 'the non-shared subscriber gets all of both rounds');
  await Promise.all([...members.slice(2), plain, pub].map((m) => m.end()));
});
