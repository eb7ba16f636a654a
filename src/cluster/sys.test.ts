/**
 * `$SYS` in a cluster: each node publishes its own `$SYS/broker/...` values and the totals over
 * every node under `$SYS/cluster/...` (nodes alive, clients connected, lease holder).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { JsClient, endAllJs, killAll } from '../interop/helpers.js';
import { startRedis } from '../testing/redis.js';
import { startClusterNode } from './testing.js';

after(async () => {
  await endAllJs();
  await killAll();
});

test('$SYS/cluster totals count the clients of every node; $SYS/broker stays per node', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const env = { SKEIN_SYS__INTERVAL: '1s' };
  const [a, b] = await Promise.all([startClusterNode('a', redisUrl, { env }), startClusterNode('b', redisUrl, { env })]);
  const url = (n: { port: number }) => `mqtt://127.0.0.1:${n.port}`;
  const onB1 = await JsClient.connect(url(b), { clientId: 'sys-b1', protocolVersion: 5 });
  const onB2 = await JsClient.connect(url(b), { clientId: 'sys-b2', protocolVersion: 4 });
  const watcher = await JsClient.connect(url(a), { clientId: 'sys-watch', protocolVersion: 5 });
  await watcher.subscribe(['$SYS/cluster/#', '$SYS/broker/clients/connected'], 0);
  const last = (topic: string) => [...watcher.messages].reverse().find((m) => m.topic === topic)?.payload;
  // One client on a and two on b: 3 in the cluster, 1 on a.
  await watcher.waitFor(() => last('$SYS/cluster/clients/connected') === '3' && last('$SYS/broker/clients/connected') === '1', 8_000, 'totals');
  assert.equal(last('$SYS/cluster/nodes/alive'), '2');
  assert.equal(last('$SYS/cluster/nodes/total'), '2');
  assert.match(last('$SYS/cluster/lease') ?? '', /^(a|b)$/);
  await onB1.end();
  await onB2.end();
  await watcher.waitFor(() => last('$SYS/cluster/clients/connected') === '1', 8_000, 'totals after two disconnects');
});
