/**
 * MQTT 5.0 conformance over TCP: session expiry, wills and will delay, takeover, offline queueing,
 * redelivery on resume.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IConnectPacket, IDisconnectPacket } from 'mqtt-packet';
import { broker, client, closedWith, connect, publish, receive, sleep, subscribe, text, uid } from './helpers.js';

const SE = (s: number) => ({ properties: { sessionExpiryInterval: s } });

function willOf(topic: string, extra: Partial<NonNullable<IConnectPacket['will']>> = {}): Partial<IConnectPacket> {
  return { will: { topic, payload: Buffer.from('bye'), qos: 0, retain: false, ...extra } as IConnectPacket['will'] };
}

test('[MQTT-3.1.2-23] with Session Expiry 0 the session ends with the connection', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, ...SE(0) });
  await subscribe(a, 'se0', 1);
  a.destroy();
  await a.closedPromise;
  const { connack } = await connect(t, b, 5, { clientId: id, clean: false });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-4.1.0-2] the session is discarded once the Session Expiry Interval has passed', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, ...SE(1) });
  await subscribe(a, 'se1', 1);
  a.destroy();
  await sleep(1600);
  const { connack } = await connect(t, b, 5, { clientId: id, clean: false, ...SE(1) });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.14.2-*] a Session Expiry Interval on DISCONNECT replaces the CONNECT value (0 ends the session)', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, ...SE(60) });
  await subscribe(a, 'sed', 1);
  a.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  await a.expectClose();
  const { connack } = await connect(t, b, 5, { clientId: id, clean: false });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.14.2-*] a non-zero Session Expiry on DISCONNECT after 0 on CONNECT gets DISCONNECT 0x82 (and the will)', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'sez/will', 0);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, ...SE(0), ...willOf('sez/will') });
  a.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
  const d = (await closedWith(a)) as IDisconnectPacket;
  assert.equal(d.reasonCode, 0x82);
  assert.equal(d.properties?.sessionExpiryInterval, undefined, '[MQTT-3.14.2-2] no Session Expiry on a server DISCONNECT');
  assert.equal(text(await receive(w)), 'bye', 'not a valid DISCONNECT: the will is published');
  const { connack } = await connect(t, b, 5, { clientId: id, clean: false });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.1.2-7] [MQTT-3.1.2-8] the will is published when the connection closes without DISCONNECT', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'w5/a', 1);
  const c = await client(t, b, 5, willOf('w5/a', { qos: 1 }));
  c.destroy();
  const m = await receive(w);
  assert.deepEqual([text(m), m.qos], ['bye', 1]);
});

test('[MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT 0x00 deletes the will', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'w5/b', 0);
  const c = await client(t, b, 5, willOf('w5/b'));
  c.send({ cmd: 'disconnect', reasonCode: 0 });
  await c.expectClose();
  assert.ok(await w.nothingWithin(300));
});

test('[MQTT-3.14.4-3] DISCONNECT 0x04 (Disconnect with Will Message) publishes the will', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'w5/c', 0);
  const c = await client(t, b, 5, willOf('w5/c'));
  c.send({ cmd: 'disconnect', reasonCode: 4 });
  await c.expectClose();
  assert.equal(text(await receive(w)), 'bye');
});

test('[MQTT-3.1.2-14] [MQTT-3.1.2-15] Will Retain 0 publishes non-retained, Will Retain 1 retained', async (t) => {
  const b = await broker(t);
  const c1 = await client(t, b, 5, willOf('w5/nr'));
  const c2 = await client(t, b, 5, willOf('w5/r', { retain: true }));
  c1.destroy();
  c2.destroy();
  await Promise.all([c1.closedPromise, c2.closedPromise]);
  await sleep(150);
  const s = await client(t, b, 5);
  await subscribe(s, 'w5/+', 0);
  const m = await receive(s);
  assert.deepEqual([m.topic, m.retain], ['w5/r', true]);
  assert.ok(await s.nothingWithin(200), 'the non-retained will is not stored');
});

test('[MQTT-3.1.2-8] the will waits for the Will Delay Interval', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'w5/delay', 0);
  const c = await client(t, b, 5, { ...SE(60), ...willOf('w5/delay', { properties: { willDelayInterval: 1 } }) });
  c.destroy();
  await c.closedPromise;
  assert.ok(await w.nothingWithin(400), 'not before the delay');
  assert.equal(text(await receive(w, true, 3000)), 'bye');
});

test('[MQTT-3.1.3-9] a reconnect before the Will Delay Interval ends cancels the will', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'w5/cancel', 0);
  const id = uid();
  const c = await client(t, b, 5, { clientId: id, ...SE(60), ...willOf('w5/cancel', { properties: { willDelayInterval: 1 } }) });
  c.destroy();
  await c.closedPromise;
  await client(t, b, 5, { clientId: id, clean: false, ...SE(60) });
  assert.ok(await w.nothingWithin(1800), 'no will after the delay');
});

test('[MQTT-3.1.2-8] the will is published when the session ends before the Will Delay Interval', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'w5/end', 0);
  const c = await client(t, b, 5, { ...SE(1), ...willOf('w5/end', { properties: { willDelayInterval: 30 } }) });
  c.destroy();
  assert.equal(text(await receive(w, true, 4000)), 'bye');
});

test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20] will properties reach subscribers unaltered', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 5);
  await subscribe(w, 'w5/props', 0);
  const properties = {
    payloadFormatIndicator: true,
    contentType: 'text/plain',
    responseTopic: 'reply/here',
    correlationData: Buffer.from([1, 2, 3]),
    userProperties: { k: 'v' },
  };
  const c = await client(t, b, 5, willOf('w5/props', { properties }));
  c.destroy();
  const m = await receive(w);
  assert.equal(m.properties?.payloadFormatIndicator, true);
  assert.equal(m.properties?.contentType, 'text/plain');
  assert.equal(m.properties?.responseTopic, 'reply/here');
  assert.deepEqual([...(m.properties?.correlationData ?? [])], [1, 2, 3]);
  assert.deepEqual({ ...m.properties?.userProperties }, { k: 'v' });
});

test('[MQTT-3.1.4-3] [MQTT-3.14.2-2] takeover: the old connection gets DISCONNECT 0x8E and is closed; one connection remains', async (t) => {
  const b = await broker(t);
  const id = uid();
  const first = await client(t, b, 5, { clientId: id, ...SE(60) });
  await subscribe(first, 'to5', 1);
  const { c: second, connack } = await connect(t, b, 5, { clientId: id, clean: false, ...SE(60) });
  assert.equal(connack.sessionPresent, true);
  const d = (await closedWith(first)) as IDisconnectPacket;
  assert.equal(d.reasonCode, 0x8e);
  assert.equal(d.properties?.sessionExpiryInterval, undefined);
  assert.equal(b.node.broker.targets.size, 1);
  const p = await client(t, b, 5);
  await publish(p, 'to5', 'x', 1);
  assert.equal(text(await receive(second)), 'x');
});

test('[MQTT-3.1.2-23] [MQTT-4.5.0-1] messages for a disconnected session are queued and delivered on resume', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, ...SE(60) });
  await subscribe(a, 'q5/#', 2);
  a.send({ cmd: 'disconnect', reasonCode: 0 });
  await a.expectClose();
  const p = await client(t, b, 5);
  for (let i = 0; i < 5; i++) await publish(p, `q5/${i}`, String(i), ((i % 2) + 1) as 1 | 2);
  const c = await client(t, b, 5, { clientId: id, clean: false, ...SE(60) });
  const got = [];
  for (let i = 0; i < 5; i++) {
    const m = await receive(c, false);
    got.push(`${text(m)}:${m.qos}`);
    c.send(m.qos === 1 ? { cmd: 'puback', messageId: m.messageId } : { cmd: 'pubrec', messageId: m.messageId });
  }
  assert.deepEqual(got, ['0:1', '1:2', '2:1', '3:2', '4:1']);
});

test('[MQTT-3.3.1-1] [MQTT-4.4.0-1] on resume unacknowledged PUBLISH are re-sent with DUP 1 and PUBREL for released ones', async (t) => {
  const b = await broker(t);
  const id = uid();
  const s = await client(t, b, 5, { clientId: id, ...SE(60) });
  await subscribe(s, 'rd5/#', 2);
  const p = await client(t, b, 5);
  await publish(p, 'rd5/a', 'a', 1);
  await publish(p, 'rd5/b', 'b', 2);
  await publish(p, 'rd5/c', 'c', 2);
  const a = await receive(s, false);
  const bb = await receive(s, false);
  const c = await receive(s, false);
  s.send({ cmd: 'pubrec', messageId: c.messageId });
  await s.next('pubrel');
  s.destroy();
  const s2 = await client(t, b, 5, { clientId: id, clean: false, ...SE(60) });
  const r1 = await s2.next();
  const r2 = await s2.next();
  const r3 = await s2.next();
  assert.deepEqual([r1.cmd, r1.messageId, (r1 as { dup?: boolean }).dup], ['publish', a.messageId, true]);
  assert.deepEqual([r2.cmd, r2.messageId, (r2 as { dup?: boolean }).dup], ['publish', bb.messageId, true]);
  assert.deepEqual([r3.cmd, r3.messageId], ['pubrel', c.messageId]);
});

test('[MQTT-4.4.0-2] a PUBLISH answered with PUBACK >= 0x80 is not re-sent on resume', async (t) => {
  const b = await broker(t);
  const id = uid();
  const s = await client(t, b, 5, { clientId: id, ...SE(60) });
  await subscribe(s, 'neg5', 1);
  const p = await client(t, b, 5);
  await publish(p, 'neg5', 'x', 1);
  const m = await receive(s, false);
  s.send({ cmd: 'puback', messageId: m.messageId, reasonCode: 0x80 });
  await sleep(100);
  s.destroy();
  const s2 = await client(t, b, 5, { clientId: id, clean: false, ...SE(60) });
  assert.ok(await s2.nothingWithin(300));
});

test('[MQTT-3.3.2-7] topic aliases do not carry over to a new connection', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, ...SE(60) });
  await publish(a, 'alias/x', 'set', 0, { properties: { topicAlias: 1 } });
  a.send({ cmd: 'disconnect', reasonCode: 0 });
  await a.expectClose();
  const c = await client(t, b, 5, { clientId: id, clean: false, ...SE(60) });
  c.send({ cmd: 'publish', topic: '', payload: 'use', qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x82);
});
