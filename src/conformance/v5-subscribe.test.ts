/**
 * MQTT 5.0 conformance over TCP: SUBSCRIBE options (No Local, Retain As Published, Retain
 * Handling), subscription identifiers, shared subscriptions, UNSUBSCRIBE, retained messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IDisconnectPacket, ISubackPacket, IUnsubackPacket, Packet } from 'mqtt-packet';
import { broker, client, closedWith, publish, receive, sleep, subscribe, text } from './helpers.js';

test('[MQTT-3.3.1-9] [MQTT-3.3.1-5] Retain Handling 0 sends retained messages on every subscribe', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'rh/0', 'r', 1, { retain: true });
  const s = await client(t, b, 5);
  await subscribe(s, 'rh/0', 1, { rh: 0 });
  assert.equal((await receive(s)).retain, true);
  await subscribe(s, 'rh/0', 1, { rh: 0 });
  assert.equal(text(await receive(s)), 'r', '[MQTT-3.8.4-4] re-sent on a replacing subscribe');
});

test('[MQTT-3.3.1-10] Retain Handling 1 sends retained messages only for a new subscription', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'rh/1', 'r', 1, { retain: true });
  const s = await client(t, b, 5);
  await subscribe(s, 'rh/1', 1, { rh: 1 });
  assert.equal(text(await receive(s)), 'r');
  await subscribe(s, 'rh/1', 1, { rh: 1 });
  assert.ok(await s.nothingWithin(300));
});

test('[MQTT-3.3.1-11] Retain Handling 2 sends no retained messages', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'rh/2', 'r', 1, { retain: true });
  const s = await client(t, b, 5);
  await subscribe(s, 'rh/2', 1, { rh: 2 });
  assert.ok(await s.nothingWithin(300));
});

test('[MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published keeps the RETAIN flag; without it RETAIN is 0', async (t) => {
  const b = await broker(t);
  const keep = await client(t, b, 5);
  await subscribe(keep, 'rap', 0, { rap: true });
  const clear = await client(t, b, 5);
  await subscribe(clear, 'rap', 0, { rap: false });
  const p = await client(t, b, 5);
  await publish(p, 'rap', 'r', 0, { retain: true });
  await publish(p, 'rap', 'n', 0);
  const k1 = await receive(keep);
  const k2 = await receive(keep);
  const c1 = await receive(clear);
  assert.deepEqual([k1.retain, k2.retain, c1.retain], [true, false, false]);
});

test('[MQTT-3.3.1-6] [MQTT-3.3.1-7] a retained message with an empty payload deletes the retained message', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'rdel', 'r', 1, { retain: true });
  await publish(p, 'rdel', '', 1, { retain: true });
  const s = await client(t, b, 5);
  await subscribe(s, 'rdel', 0);
  assert.ok(await s.nothingWithin(300));
});

test('[MQTT-3.3.1-8] RETAIN 0 does not replace the retained message', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'rkeep', 'r', 1, { retain: true });
  await publish(p, 'rkeep', 'n', 1);
  const s = await client(t, b, 5);
  await subscribe(s, 'rkeep', 0);
  assert.equal(text(await receive(s)), 'r');
});

test('[MQTT-3.8.3-3] No Local: the publisher does not receive its own message', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  await subscribe(c, 'nl/a', 0, { nl: true });
  await subscribe(c, 'nl/b', 0, { nl: false });
  await publish(c, 'nl/a', 'mine', 0);
  await publish(c, 'nl/b', 'echo', 0);
  assert.equal(text(await receive(c)), 'echo');
  const other = await client(t, b, 5);
  await publish(other, 'nl/a', 'theirs', 0);
  assert.equal(text(await receive(c)), 'theirs');
});

test('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/x', qos: 0, nl: true, rap: false, rh: 0 }] });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x82);
});

test('[MQTT-3.3.4-3] [MQTT-3.3.4-4] one copy carries the Subscription Identifiers of every matching subscription', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'sid/+', 1, { subscriptionIdentifier: 7 });
  await subscribe(s, 'sid/#', 2, { subscriptionIdentifier: 9 });
  await subscribe(s, 'sid/x', 0);
  const p = await client(t, b, 5);
  await publish(p, 'sid/x', 'x', 2);
  const m = await receive(s);
  assert.equal(m.qos, 2, '[MQTT-3.3.4-2] maximum QoS of the matching subscriptions');
  const ids = ([] as number[]).concat(m.properties?.subscriptionIdentifier ?? []).sort();
  assert.deepEqual(ids, [7, 9]);
  assert.ok(await s.nothingWithin(200), 'a single copy');
  await publish(p, 'sid/y', 'y', 0);
  const m2 = await receive(s);
  assert.deepEqual(([] as number[]).concat(m2.properties?.subscriptionIdentifier ?? []).sort(), [7, 9]);
});

test('[MQTT-3.3.4-3] the Subscription Identifier is sent with retained messages on subscribe', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'sidr', 'r', 0, { retain: true });
  const s = await client(t, b, 5);
  await subscribe(s, 'sidr', 0, { subscriptionIdentifier: 42 });
  const m = await receive(s);
  assert.equal(m.properties?.subscriptionIdentifier, 42);
});

test('[MQTT-3.8.2-*] Subscription Identifier 0 is a Protocol Error', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  // SUBSCRIBE id 1, properties: 0x0B (subscription identifier) = 0, filter "a", options 0
  c.sendBytes([0x82, 0x09, 0x00, 0x01, 0x02, 0x0b, 0x00, 0x00, 0x01, 0x61, 0x00]);
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x82);
});

test('[MQTT-4.8.2-*] a shared subscription delivers each message to one member of the group', async (t) => {
  const b = await broker(t);
  const m1 = await client(t, b, 5);
  const m2 = await client(t, b, 5);
  await subscribe(m1, '$share/grp/sh/#', 1);
  await subscribe(m2, '$share/grp/sh/#', 1);
  const plain = await client(t, b, 5);
  await subscribe(plain, 'sh/#', 0);
  const p = await client(t, b, 5);
  for (let i = 0; i < 10; i++) await publish(p, 'sh/x', String(i), 1);
  const got: string[] = [];
  for (let i = 0; i < 10; i++) got.push(text(await receive(plain)));
  await sleep(300); // waiting only: let the group's copies arrive
  const all: Packet[] = [...m1.pending(), ...m2.pending()];
  const shared = all.filter((x) => x.cmd === 'publish').map((x) => (x as { payload: Buffer }).payload.toString()).sort((a, c) => Number(a) - Number(c));
  assert.deepEqual(shared, got, 'each message exactly once across the group');
});

test('[MQTT-4.8.2-*] retained messages are not sent when a shared subscription is made', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'shr/x', 'r', 1, { retain: true });
  const s = await client(t, b, 5);
  await subscribe(s, '$share/g/shr/x', 1);
  assert.ok(await s.nothingWithin(300));
});

test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] [MQTT-3.9.3-1] invalid shared / topic filters get 0x8F, in order with the others', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  c.send({
    cmd: 'subscribe',
    messageId: 3,
    subscriptions: [
      { topic: '$share//x', qos: 0, nl: false, rap: false, rh: 0 },
      { topic: 'ok/1', qos: 1, nl: false, rap: false, rh: 0 },
      { topic: '$share/g+/x', qos: 0, nl: false, rap: false, rh: 0 },
      { topic: '$share/g', qos: 0, nl: false, rap: false, rh: 0 },
      { topic: 'a/#/b', qos: 2, nl: false, rap: false, rh: 0 },
      { topic: 'ok/2', qos: 2, nl: false, rap: false, rh: 0 },
    ],
  });
  const ack = (await c.next('suback')) as ISubackPacket;
  assert.equal(ack.messageId, 3);
  assert.deepEqual(ack.granted, [0x8f, 1, 0x8f, 0x8f, 0x8f, 2]);
});

test('[MQTT-3.11.3-1] [MQTT-3.11.3-2] [MQTT-3.10.4-5] UNSUBACK has a reason code per filter: 0x00 or 0x11', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  await subscribe(c, 'u5/a', 0);
  c.send({ cmd: 'unsubscribe', messageId: 8, unsubscriptions: ['u5/none', 'u5/a', 'u5/a'] });
  const ack = (await c.next('unsuback')) as IUnsubackPacket;
  assert.equal(ack.messageId, 8);
  assert.deepEqual(ack.granted, [0x11, 0x00, 0x11]);
  const p = await client(t, b, 5);
  await publish(p, 'u5/a', 'x', 0);
  assert.ok(await c.nothingWithin(200), '[MQTT-3.10.4-1] [MQTT-3.10.4-2]');
});

test('[MQTT-4.7.2-1] $-topics are not matched by # or +/... (v5)', async (t) => {
  const b = await broker(t);
  const all = await client(t, b, 5);
  await subscribe(all, '#', 0);
  await subscribe(all, '+/status', 0);
  const p = await client(t, b, 5);
  await publish(p, '$internal/status', 'x', 0);
  await publish(p, 'public/status', 'y', 0);
  const m = await receive(all);
  assert.equal(m.topic, 'public/status');
  assert.ok(await all.nothingWithin(200));
});

test('[MQTT-3.8.4-3] a repeated SUBSCRIBE replaces the subscription (its options and QoS)', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  await subscribe(c, 'rep5', 2, { nl: false });
  await subscribe(c, 'rep5', 1, { nl: true });
  await publish(c, 'rep5', 'self', 0);
  const other = await client(t, b, 5);
  await publish(other, 'rep5', 'x', 2);
  const m = await receive(c);
  assert.deepEqual([text(m), m.qos], ['x', 1]);
});
