/**
 * Retained messages across the cluster [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-9]: a retained
 * message published on node a reaches, with RETAIN set, a new subscriber on node b and one on a
 * node c started after the publish; an empty retained message published on b deletes it on every
 * node.
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

test('retained: set on a, seen on b and on a later node c, deleted from b everywhere', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const [a, b] = await Promise.all([startClusterNode('a', redisUrl), startClusterNode('b', redisUrl)]);
  const url = (n: { port: number }) => `mqtt://127.0.0.1:${n.port}`;

  const pubA = await JsClient.connect(url(a), { clientId: 'ret-pub-a', protocolVersion: 5 });
  await pubA.publish('ret/state', 'on', 1, true);
  await pubA.publish('ret/other', 'kept', 1, true);

  /** A fresh subscriber to `filter` on `node`; returns what it got within `ms`. */
  const fresh = async (node: { port: number }, id: string, filter: string, ms = 700) => {
    const s = await JsClient.connect(url(node), { clientId: id, protocolVersion: 5 });
    await s.subscribe(filter, 1);
    await sleep(ms);
    await s.end();
    return s.messages;
  };

  // b: the change feed brought it (b was running when it was published).
  const onB = await fresh(b, 'ret-sub-b', 'ret/state');
  assert.deepEqual(onB.map((m) => [m.topic, m.payload, m.retain]), [['ret/state', 'on', true]], 'b delivers the retained message with RETAIN set');

  // c: started after the publish, loads it from the store.
  const c = await startClusterNode('c', redisUrl);
  const onC = await fresh(c, 'ret-sub-c', 'ret/+');
  assert.deepEqual(
    onC.map((m) => [m.topic, m.payload, m.retain]).sort(),
    [['ret/other', 'kept', true], ['ret/state', 'on', true]],
    'c delivers both retained messages with RETAIN set',
  );

  // Delete from b (empty payload, retained): gone on a, b and c; the other one stays.
  const pubB = await JsClient.connect(url(b), { clientId: 'ret-pub-b', protocolVersion: 5 });
  await pubB.publish('ret/state', '', 1, true);
  await sleep(300); // the change feed reaches every node well within this
  for (const [node, name] of [[a, 'a'], [b, 'b'], [c, 'c']] as const) {
    const got = await fresh(node, `ret-after-${name}`, 'ret/#');
    assert.deepEqual(got.map((m) => [m.topic, m.payload]), [['ret/other', 'kept']], `${name}: the deleted retained message is gone, the other kept`);
  }
  // A node started after the delete does not resurrect it either.
  const d = await startClusterNode('d', redisUrl);
  const onD = await fresh(d, 'ret-sub-d', 'ret/#');
  assert.deepEqual(onD.map((m) => [m.topic, m.payload]), [['ret/other', 'kept']], 'd: only the remaining retained message');
  await Promise.all([pubA.end(), pubB.end()]);
});
