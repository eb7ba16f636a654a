import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { startTestBroker } from '../testing/harness.js';

test('$SYS/broker topics are published at the interval in Mosquitto layout', async (t) => {
  const b = await startTestBroker({ sys: { intervalMs: 200 } });
  t.after(() => b.stop());
  const c = await mqtt.connectAsync(b.url, { clientId: 'sys-watcher', protocolVersion: 5 });
  t.after(() => c.endAsync());
  const seen = new Map<string, string>();
  c.on('message', (topic, payload) => seen.set(topic, payload.toString()));
  await c.subscribeAsync('$SYS/broker/#', { qos: 0 });
  const deadline = Date.now() + 3000;
  // The retained value from before we connected comes first; the next interval counts us.
  while (seen.get('$SYS/broker/clients/connected') !== '1' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(seen.get('$SYS/broker/version') ?? '', /^skein version \d+\.\d+\.\d+/);
  assert.equal(seen.get('$SYS/broker/clients/connected'), '1');
  assert.match(seen.get('$SYS/broker/uptime') ?? '', /^\d+ seconds$/);
  for (const k of ['messages/received', 'messages/sent', 'bytes/received', 'bytes/sent', 'subscriptions/count', 'retained messages/count']) {
    assert.match(seen.get(`$SYS/broker/${k}`) ?? '', /^\d+$/, k);
  }
});

test('$SYS topics are not matched by a leading # [MQTT-4.7.2-1]', async (t) => {
  const b = await startTestBroker({ sys: { intervalMs: 100 } });
  t.after(() => b.stop());
  const c = await mqtt.connectAsync(b.url, { clientId: 'hash-watcher' });
  t.after(() => c.endAsync());
  const topics: string[] = [];
  c.on('message', (topic) => topics.push(topic));
  await c.subscribeAsync('#', { qos: 0 });
  await c.publishAsync('plain/topic', 'x', { qos: 1 });
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(topics, ['plain/topic']);
});

test('$SYS values are not written to the store (no retained $SYS after restart)', async (t) => {
  const b = await startTestBroker({ sys: { intervalMs: 100 }, store: { type: 'embedded' } });
  t.after(() => b.stop());
  await new Promise((r) => setTimeout(r, 250));
  const stored = await b.node.broker.store.listRetained();
  assert.equal(stored.filter((m) => m.topic.startsWith('$SYS/')).length, 0);
  assert.ok(b.node.broker.retainedCount > 5, 'the $SYS values are retained in memory');
});
