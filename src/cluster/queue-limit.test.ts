/**
 * Bounded queues in a cluster (design notes §2, invariant 6): a persistent session that is
 * offline is held by no node, so the bound on its queue (limits.maxQueuedMessages) is enforced by
 * the store at commit time; the publisher on another node is still acknowledged, the excess is
 * dropped, and the session gets exactly the first N messages.
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

test('an offline persistent session queues at most limits.maxQueuedMessages, whichever node publishes', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const env = { SKEIN_LIMITS__MAX_QUEUED_MESSAGES: '5' };
  const [a, b] = await Promise.all([startClusterNode('a', redisUrl, { env }), startClusterNode('b', redisUrl, { env })]);
  const url = (n: { port: number }) => `mqtt://127.0.0.1:${n.port}`;
  const opts = { clientId: 'ql-sub', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 300 } };

  const sub = await JsClient.connect(url(a), opts);
  await sub.subscribe('ql/t', 1);
  await sub.end();
  await sleep(200); // the disconnect reaches b through the change feed

  const pub = await JsClient.connect(url(b), { clientId: 'ql-pub', protocolVersion: 5 });
  for (let i = 0; i < 9; i++) await pub.publish('ql/t', `m${i}`, 1);
  await pub.end();

  const back = await JsClient.connect(url(b), opts);
  assert.equal(back.connack?.sessionPresent, true);
  await back.waitFor(() => back.messages.length >= 5, 5_000, 'five queued messages');
  await sleep(500);
  assert.deepEqual(back.messages.map((m) => m.payload), ['m0', 'm1', 'm2', 'm3', 'm4']);
});
