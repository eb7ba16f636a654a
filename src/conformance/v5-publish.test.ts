/**
 * MQTT 5.0 conformance over TCP: PUBLISH flows, properties passed through, message expiry, topic
 * aliases, flow control (Receive Maximum) and Maximum Packet Size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IDisconnectPacket, IPubackPacket, IPublishPacket } from 'mqtt-packet';
import { broker, client, closedWith, connect, publish, receive, sleep, subscribe, sync, text, uid } from './helpers.js';

test('[MQTT-3.3.4-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8] [MQTT-4.3.3-11] PUBACK / PUBREC / PUBCOMP carry the PUBLISH packet id and a valid reason code', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  c.send({ cmd: 'publish', topic: 'q5/1', payload: 'a', qos: 1, messageId: 300, retain: false, dup: false });
  const ack = (await c.next('puback')) as IPubackPacket;
  assert.equal(ack.messageId, 300);
  assert.ok([0x00, 0x10].includes(ack.reasonCode ?? 0), '[MQTT-3.4.2-1]');
  c.send({ cmd: 'publish', topic: 'q5/2', payload: 'a', qos: 2, messageId: 301, retain: false, dup: false });
  const rec = await c.next('pubrec');
  assert.equal(rec.messageId, 301);
  c.send({ cmd: 'pubrel', messageId: 301 });
  const comp = await c.next('pubcomp');
  assert.deepEqual([comp.messageId, (comp as { reasonCode?: number }).reasonCode ?? 0], [301, 0]);
});

test('[MQTT-4.3.3-10] [MQTT-4.3.3-12] a QoS 2 PUBLISH re-sent before PUBREL is not delivered twice; after PUBCOMP the id is new', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'once5', 2);
  const p = await client(t, b, 5);
  const msg = { cmd: 'publish' as const, topic: 'once5', payload: 'x', qos: 2 as const, messageId: 5, retain: false, dup: false };
  p.send(msg);
  await p.next('pubrec');
  p.send({ ...msg, dup: true });
  assert.equal((await p.next('pubrec')).messageId, 5);
  p.send({ cmd: 'pubrel', messageId: 5 });
  await p.next('pubcomp');
  await receive(s);
  assert.ok(await s.nothingWithin(300));
  p.send(msg);
  await p.next('pubrec');
  p.send({ cmd: 'pubrel', messageId: 5 });
  await p.next('pubcomp');
  await receive(s);
});

test('[MQTT-4.3.3-4] a PUBREC with a reason code >= 0x80 ends the flow: no PUBREL', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'recfail', 2);
  const p = await client(t, b, 5);
  await publish(p, 'recfail', 'x', 2);
  const m = await receive(s, false);
  s.send({ cmd: 'pubrec', messageId: m.messageId, reasonCode: 0x80 });
  await sync(s);
  assert.ok(await s.nothingWithin(200), 'no PUBREL');
});

test('[MQTT-4.6.0-2] [MQTT-4.6.0-3] acknowledgements go out in the order the PUBLISH packets arrived', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5, { clientId: uid(), properties: { sessionExpiryInterval: 60 } });
  await subscribe(s, 'ord5/#', 2); // persistent subscriber: acknowledgements wait for the store
  const p = await client(t, b, 5);
  const ids = [21, 22, 23, 24, 25, 26];
  ids.forEach((messageId, i) => p.send({ cmd: 'publish', topic: i % 3 ? `ord5/${i}` : 'none', payload: 'x', qos: i % 2 ? 2 : 1, messageId, retain: i === 1, dup: false }));
  const got = [];
  for (let i = 0; i < ids.length; i++) got.push((await p.next()).messageId);
  assert.deepEqual(got, ids);
});

test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] application properties are forwarded unaltered', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'props', 1);
  const p = await client(t, b, 5);
  const properties = {
    payloadFormatIndicator: true,
    contentType: 'application/json',
    responseTopic: 'resp/1',
    correlationData: Buffer.from('corr'),
    userProperties: { a: '1', b: ['2', '3'] },
  };
  await publish(p, 'props', '{}', 1, { properties });
  const m = await receive(s);
  assert.equal(m.properties?.payloadFormatIndicator, true);
  assert.equal(m.properties?.contentType, 'application/json');
  assert.equal(m.properties?.responseTopic, 'resp/1');
  assert.equal(m.properties?.correlationData?.toString(), 'corr');
  assert.deepEqual(JSON.parse(JSON.stringify(m.properties?.userProperties)), { a: '1', b: ['2', '3'] });
});

test('[MQTT-3.3.2-5] a message whose expiry passed while queued is not delivered', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, properties: { sessionExpiryInterval: 60 } });
  await subscribe(a, 'exp/#', 1);
  a.send({ cmd: 'disconnect', reasonCode: 0 });
  await a.expectClose();
  const p = await client(t, b, 5);
  await publish(p, 'exp/short', 'short', 1, { properties: { messageExpiryInterval: 1 } });
  await publish(p, 'exp/long', 'long', 1, { properties: { messageExpiryInterval: 100 } });
  await sleep(1500);
  const c = await client(t, b, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
  const m = await receive(c);
  assert.equal(text(m), 'long');
  assert.ok(await c.nothingWithin(200));
});

test('[MQTT-3.3.2-6] the forwarded Message Expiry Interval is the received value minus the time waited', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'exp/ret', 'r', 1, { retain: true, properties: { messageExpiryInterval: 10 } });
  await sleep(1100);
  const s = await client(t, b, 5);
  await subscribe(s, 'exp/ret', 1);
  const m = await receive(s);
  const left = m.properties?.messageExpiryInterval;
  assert.ok(left !== undefined && left > 0 && left < 10, `remaining ${left}`);
});

test('[MQTT-3.3.2-5] an expired retained message is not sent to new subscribers', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 5);
  await publish(p, 'exp/gone', 'r', 0, { retain: true, properties: { messageExpiryInterval: 1 } });
  await sleep(1500);
  const s = await client(t, b, 5);
  await subscribe(s, 'exp/gone', 0);
  assert.ok(await s.nothingWithin(200));
});

test('[MQTT-3.3.2-12] topic aliases up to the announced maximum are accepted and resolve to the topic', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'alias/#', 0);
  const p = await client(t, b, 5);
  await publish(p, 'alias/one', '1', 0, { properties: { topicAlias: 10 } });
  await publish(p, '', '2', 0, { properties: { topicAlias: 10 } });
  await publish(p, 'alias/two', '3', 0, { properties: { topicAlias: 10 } }); // remapped
  await publish(p, '', '4', 0, { properties: { topicAlias: 10 } });
  const got = [];
  for (let i = 0; i < 4; i++) {
    const m = await receive(s);
    got.push(`${m.topic}=${text(m)}`);
  }
  assert.deepEqual(got, ['alias/one=1', 'alias/one=2', 'alias/two=3', 'alias/two=4']);
});

test('[MQTT-3.3.2-8] [MQTT-3.3.2-9] Topic Alias 0 or above the maximum gets DISCONNECT 0x94', async (t) => {
  const b = await broker(t);
  for (const topicAlias of [0, 11]) {
    const c = await client(t, b, 5);
    c.send({ cmd: 'publish', topic: 'x', payload: 'x', qos: 0, retain: false, dup: false, properties: { topicAlias } } as IPublishPacket);
    assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x94, `alias ${topicAlias}`);
  }
});

test('[MQTT-3.3.2-*] an empty topic with an unknown alias, or without alias, is a Protocol Error (0x82)', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  c.send({ cmd: 'publish', topic: '', payload: 'x', qos: 0, retain: false, dup: false, properties: { topicAlias: 3 } });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x82);
  const d = await client(t, b, 5);
  d.sendBytes([0x30, 0x04, 0x00, 0x00, 0x00, 0x61]);
  assert.equal(((await closedWith(d)) as IDisconnectPacket).reasonCode, 0x82);
});

test('[MQTT-3.3.2-2] a wildcard in a PUBLISH topic gets DISCONNECT 0x90', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  c.send({ cmd: 'publish', topic: 'a/+', payload: 'x', qos: 0, retain: false, dup: false });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x90);
});

test('[MQTT-3.3.4-6] a PUBLISH from a client with a Subscription Identifier is a Protocol Error', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  c.send({ cmd: 'publish', topic: 'x', payload: 'x', qos: 0, retain: false, dup: false, properties: { subscriptionIdentifier: 4 } });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x82);
});

test('[MQTT-3.3.4-7] a client exceeding our Receive Maximum gets DISCONNECT 0x93', async (t) => {
  const b = await broker(t, { limits: { receiveMaximum: 2 } });
  const s = await client(t, b, 5);
  const p = await client(t, b, 5);
  // QoS 2 PUBLISH stay unacknowledged until PUBREL: the third exceeds the window.
  for (let i = 1; i <= 3; i++) p.send({ cmd: 'publish', topic: 'rm', payload: 'x', qos: 2, messageId: i, retain: false, dup: false });
  const d = (await closedWith(p)) as IDisconnectPacket;
  assert.equal(d.reasonCode, 0x93);
  await sync(s);
});

test('[MQTT-3.3.4-9] [MQTT-4.9.0-2] [MQTT-4.9.0-3] [MQTT-3.3.4-10] the server never exceeds the client Receive Maximum and still answers PINGREQ', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5, { properties: { receiveMaximum: 2 } });
  await subscribe(s, 'flow', 1);
  const p = await client(t, b, 5);
  for (let i = 0; i < 5; i++) await publish(p, 'flow', String(i), 1);
  const m0 = await receive(s, false);
  const m1 = await receive(s, false);
  await sync(s); // PINGRESP while the quota is zero
  assert.ok(await s.nothingWithin(200), 'no third PUBLISH before an acknowledgement');
  s.send({ cmd: 'puback', messageId: m0.messageId });
  const m2 = await receive(s, false);
  assert.ok(await s.nothingWithin(200));
  s.send({ cmd: 'puback', messageId: m1.messageId });
  s.send({ cmd: 'puback', messageId: m2.messageId });
  const rest = [text(await receive(s)), text(await receive(s))];
  assert.deepEqual([text(m0), text(m1), text(m2), ...rest], ['0', '1', '2', '3', '4']);
});

test('[MQTT-3.2.2-15] [MQTT-4.13.1-1] a packet larger than our Maximum Packet Size gets DISCONNECT 0x95', async (t) => {
  const b = await broker(t, { limits: { maxPacketSize: 1024 } });
  const { c, connack } = await connect(t, b, 5);
  assert.equal(connack.properties?.maximumPacketSize, 1024);
  c.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(2000), qos: 0, retain: false, dup: false });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x95);
});

test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a message larger than the client Maximum Packet Size is not sent (and the flow goes on)', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5, { properties: { maximumPacketSize: 200 } });
  await subscribe(s, 'mps', 1);
  const p = await client(t, b, 5);
  await publish(p, 'mps', Buffer.alloc(500, 0x61), 1);
  await publish(p, 'mps', 'small', 1);
  const m = await receive(s);
  assert.equal(text(m), 'small');
  assert.equal(s.parseErrors.length, 0);
});

test('[MQTT-3.3.1-2] [MQTT-4.3.1-1] QoS 0 deliveries have DUP 0 and no packet id', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'q0', 2);
  const p = await client(t, b, 5);
  await publish(p, 'q0', 'x', 0, { dup: false });
  const m = await receive(s);
  assert.deepEqual([m.qos, m.dup, m.messageId], [0, false, undefined]);
});

test('[MQTT-3.3.4-2] [MQTT-3.8.4-8] delivery is at the lower of published QoS and granted QoS', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'down/1', 1);
  const p = await client(t, b, 5);
  await publish(p, 'down/1', 'x', 2);
  assert.equal((await receive(s)).qos, 1);
});
