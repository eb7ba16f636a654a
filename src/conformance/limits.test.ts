/**
 * Configured limits: each breach gets the right reason code (v5) or a close (3.1.1), and the
 * broker counts it. Limits: connect timeout, connections, topic length and levels, subscriptions
 * per client, per-session queue length and bytes, packet size.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IConnackPacket, ISubackPacket } from 'mqtt-packet';
import { RC } from '../codec/reason-codes.js';
import { broker, client, closedWith, publish, raw, receive, sleep, subscribe, sync, uid } from './helpers.js';

test('a connection that never sends CONNECT is closed after limits.connectTimeout', async (t) => {
  const b = await broker(t, { limits: { connectTimeoutMs: 300 } });
  const c = await raw(t, b, 4);
  const started = Date.now();
  await c.expectClose(3000);
  assert.ok(Date.now() - started >= 250, 'not closed before the timeout');
});

test('a half-sent CONNECT does not keep the connection open past limits.connectTimeout', async (t) => {
  const b = await broker(t, { limits: { connectTimeoutMs: 300 } });
  const c = await raw(t, b, 4);
  c.sendBytes([0x10, 0x20, 0x00, 0x04, 0x4d]); // CONNECT header promising 32 bytes, 3 sent
  await c.expectClose(3000);
});

test('limits.maxConnections: v5 CONNECT beyond the limit gets CONNACK 0x89 Server busy, and it is counted', async (t) => {
  const b = await broker(t, { limits: { maxConnections: 2 } });
  await client(t, b, 5, { clientId: uid() });
  await client(t, b, 4, { clientId: uid() });
  const third = await raw(t, b, 5);
  const connack = await third.handshake({ clientId: uid() });
  assert.equal(connack.reasonCode, RC.ServerBusy);
  await third.expectClose();
  const v3 = await raw(t, b, 4);
  const connack3 = (await v3.handshake({ clientId: uid() })) as IConnackPacket;
  assert.equal(connack3.returnCode, 3, '3.1.1: Server unavailable');
  assert.equal(b.node.broker.stats.limitHits['max_connections'], 2);
});

test('limits.maxTopicLevels: a PUBLISH with too many levels gets DISCONNECT 0x90 (v5) and is counted', async (t) => {
  const b = await broker(t, { limits: { maxTopicLevels: 3 } });
  const c = await client(t, b, 5);
  await publish(c, 'a/b/c', 'ok', 1);
  c.send({ cmd: 'publish', topic: 'a/b/c/d', payload: 'x', qos: 0, retain: false, dup: false });
  const d = await closedWith(c);
  assert.equal((d as { reasonCode?: number } | undefined)?.reasonCode, RC.TopicNameInvalid);
  assert.equal(b.node.broker.stats.limitHits['topic_name'], 1);
});

test('limits.maxTopicLength: a SUBSCRIBE filter above the limit gets SUBACK 0x8F (v5) / 0x80 (3.1.1)', async (t) => {
  const b = await broker(t, { limits: { maxTopicLength: 10 } });
  const c5 = await client(t, b, 5);
  const ack5 = await subscribe(c5, 'x'.repeat(11), 1);
  assert.deepEqual(ack5.granted, [RC.TopicFilterInvalid]);
  const c4 = await client(t, b, 4);
  const ack4 = await subscribe(c4, 'x'.repeat(11), 1);
  assert.deepEqual(ack4.granted, [0x80]);
  assert.deepEqual((await subscribe(c4, 'x'.repeat(10), 1)).granted, [1]);
});

test('limits.maxSubscriptionsPerClient: the subscription beyond the limit gets 0x97 Quota exceeded, replacing one does not count', async (t) => {
  const b = await broker(t, { limits: { maxSubscriptionsPerClient: 2 } });
  const c = await client(t, b, 5);
  assert.deepEqual((await subscribe(c, 'a', 1)).granted, [1]);
  assert.deepEqual((await subscribe(c, 'b', 1)).granted, [1]);
  assert.deepEqual((await subscribe(c, 'a', 2)).granted, [2], 'replacing an existing subscription is allowed');
  const over = (await subscribe(c, 'c', 1)) as ISubackPacket;
  assert.deepEqual(over.granted, [RC.QuotaExceeded]);
  assert.equal(b.node.broker.stats.limitHits['subscriptions_per_client'], 1);
});

test('limits.maxQueuedMessages: an offline persistent session keeps the oldest N messages, the rest are dropped and counted', async (t) => {
  const b = await broker(t, { limits: { maxQueuedMessages: 5 } });
  const id = uid('q');
  const sub = await client(t, b, 4, { clientId: id, clean: false });
  await subscribe(sub, 'q/t', 1);
  sub.send({ cmd: 'disconnect' });
  await sub.expectClose();
  const pub = await client(t, b, 4);
  for (let i = 0; i < 8; i++) await publish(pub, 'q/t', `m${i}`, 1);
  assert.equal(b.node.broker.stats.dropped['queue_full'], 3);
  const back = await client(t, b, 4, { clientId: id, clean: false });
  const got: string[] = [];
  for (let i = 0; i < 5; i++) got.push((await receive(back)).payload.toString());
  assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3', 'm4']);
  assert.ok(await back.nothingWithin(200), 'nothing beyond the limit was queued');
});

test('limits.maxQueuedBytes: payload bytes queued per session are bounded', async (t) => {
  const b = await broker(t, { limits: { maxQueuedBytes: 1000 } });
  const id = uid('qb');
  const sub = await client(t, b, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
  await subscribe(sub, 'qb/t', 1);
  sub.send({ cmd: 'disconnect', reasonCode: 0 });
  await sub.expectClose();
  const pub = await client(t, b, 5);
  for (let i = 0; i < 5; i++) await publish(pub, 'qb/t', Buffer.alloc(300, i), 1);
  // 3 x 300 bytes fit in 1000, the 4th and 5th do not.
  assert.equal(b.node.broker.stats.dropped['queue_full'], 2);
  const back = await client(t, b, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
  for (let i = 0; i < 3; i++) assert.equal((await receive(back)).payload[0], i);
  assert.ok(await back.nothingWithin(200));
});

test('limits.maxInflight: the broker never has more unacknowledged QoS 1 messages out than the window', async (t) => {
  const b = await broker(t, { limits: { maxInflight: 3 } });
  const sub = await client(t, b, 4);
  await subscribe(sub, 'w/t', 1);
  const pub = await client(t, b, 4);
  for (let i = 0; i < 6; i++) await publish(pub, 'w/t', `m${i}`, 1);
  const first = [];
  for (let i = 0; i < 3; i++) first.push(await receive(sub, false));
  assert.ok(await sub.nothingWithin(200), 'no 4th message before an acknowledgement');
  sub.send({ cmd: 'puback', messageId: first[0]!.messageId });
  const fourth = await receive(sub, false);
  assert.equal(fourth.payload.toString(), 'm3');
  await sync(pub);
});

test('limits.maxPacketSize applies to CONNECT too: an oversized CONNECT is refused and the connection closed', async (t) => {
  const b = await broker(t, { limits: { maxPacketSize: 100 } });
  const c = await raw(t, b, 5);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'x'.repeat(200), clean: true, keepalive: 10 });
  await c.expectClose();
  await sleep(10);
  assert.equal(b.node.broker.targets.size, 0);
});

test('[MQTT-3.3.4-9] a v5 client sending more unacknowledged QoS 2 PUBLISH than Receive Maximum gets DISCONNECT 0x93', async (t) => {
  const b = await broker(t, { limits: { receiveMaximum: 5 } });
  const c = await client(t, b, 5);
  // QoS 2 PUBLISH stays unacknowledged (in the Receive Maximum count) until PUBREL.
  for (let id = 1; id <= 5; id++) c.send({ cmd: 'publish', topic: 'rm/a', payload: 'x', qos: 2, messageId: id, retain: false, dup: false });
  for (let i = 0; i < 5; i++) await c.next('pubrec');
  await sync(c);
  assert.equal(c.closed, false, 'five are within the limit');
  c.send({ cmd: 'publish', topic: 'rm/a', payload: 'x', qos: 2, messageId: 6, retain: false, dup: false });
  const d = await closedWith(c);
  assert.equal((d as { reasonCode?: number } | undefined)?.reasonCode, RC.ReceiveMaximumExceeded);
  assert.equal(b.node.broker.stats.limitHits['receive_maximum'], 1);
});

test('a 3.1.1 client, which is never told a Receive Maximum, is not disconnected for exceeding it', async (t) => {
  const b = await broker(t, { limits: { receiveMaximum: 5 } });
  const sub = await client(t, b, 4);
  await subscribe(sub, 'rm/b', 1);
  const c = await client(t, b, 4);
  for (let id = 1; id <= 50; id++) c.send({ cmd: 'publish', topic: 'rm/b', payload: `m${id}`, qos: 2, messageId: id, retain: false, dup: false });
  for (let i = 0; i < 50; i++) await c.next('pubrec');
  for (let id = 1; id <= 50; id++) c.send({ cmd: 'pubrel', messageId: id });
  for (let i = 0; i < 50; i++) await c.next('pubcomp');
  const got: string[] = [];
  for (let i = 0; i < 50; i++) got.push(Buffer.from((await receive(sub)).payload).toString());
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `m${i + 1}`));
  assert.equal(c.closed, false);
  assert.equal(b.node.broker.stats.limitHits['receive_maximum'] ?? 0, 0);
});
