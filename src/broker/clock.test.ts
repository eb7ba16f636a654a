/**
 * Broker.now(): the clock read at most once per delivery batch (one socket read), at every call
 * outside one; and the messages of one read stamped with that one reading.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { RawClient, startTestBroker } from '../testing/harness.js';

test('Broker.now reads Date.now once per delivery batch (nested batches share it), at every call outside a batch', async (t) => {
  const b = await startTestBroker();
  t.after(() => b.stop());
  const broker = b.node.broker;
  let clock = 1_800_000_000_000;
  const reads = t.mock.method(Date, 'now', () => ++clock);
  try {
    assert.equal(broker.now(), 1_800_000_000_001);
    assert.equal(broker.now(), 1_800_000_000_002, 'outside a batch: a fresh reading each call');
    broker.beginDeliveryBatch();
    const first = broker.now();
    broker.beginDeliveryBatch(); // nested (pump inside a read)
    assert.equal(broker.now(), first);
    broker.endDeliveryBatch();
    assert.equal(broker.now(), first, 'the outer batch keeps its reading');
    broker.endDeliveryBatch();
    assert.equal(reads.mock.callCount(), 3, 'one reading for the whole batch');
    broker.beginDeliveryBatch();
    assert.equal(broker.now(), first + 1, 'the next batch reads the clock again');
    broker.endDeliveryBatch();
  } finally {
    reads.mock.restore();
  }
});

test('retained messages published in one read are stamped with the same createdAt, a later read with its own', async (t) => {
  const b = await startTestBroker();
  t.after(() => b.stop());
  const c = await RawClient.connect(b.port, 4);
  t.after(() => c.destroy());
  await c.handshake({ clientId: 'clock-pub' });
  const publish = (topic: string, id: number): mqttPacket.IPublishPacket => ({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: id, retain: true, dup: false });
  // One write of both: one read at the broker.
  c.sendBytes(Buffer.concat([mqttPacket.generate(publish('clock/a', 1)), mqttPacket.generate(publish('clock/b', 2))]));
  for (let i = 0; i < 2; i++) await c.next('puback');
  await new Promise((r) => setTimeout(r, 20));
  c.send(publish('clock/c', 3));
  await c.next('puback');
  const at = (topic: string) => b.node.broker.retainedFor(topic)[0]!.createdAt;
  assert.equal(at('clock/a'), at('clock/b'));
  assert.ok(at('clock/c') > at('clock/a'), `${at('clock/c')} after ${at('clock/a')}`);
});
