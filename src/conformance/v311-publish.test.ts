/**
 * MQTT 3.1.1 conformance over TCP: PUBLISH flows, retained messages, redelivery, topics,
 * SUBSCRIBE / UNSUBSCRIBE, PINGREQ.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ISubackPacket, IUnsubackPacket } from 'mqtt-packet';
import type { Authorizer } from '../auth/types.js';
import { allowAll } from '../auth/types.js';
import { broker, client, nextId, publish, raw, receive, subscribe, sync, text, uid } from './helpers.js';

test('[MQTT-3.3.4-1] [MQTT-4.3.2-2] [MQTT-4.3.3-2] QoS 0 gets no ack, QoS 1 PUBACK, QoS 2 PUBREC then PUBCOMP, same ids', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.send({ cmd: 'publish', topic: 'q/0', payload: 'a', qos: 0, retain: false, dup: false });
  await sync(c); // nothing came before PINGRESP
  c.send({ cmd: 'publish', topic: 'q/1', payload: 'a', qos: 1, messageId: 7, retain: false, dup: false });
  assert.equal((await c.next('puback')).messageId, 7);
  c.send({ cmd: 'publish', topic: 'q/2', payload: 'a', qos: 2, messageId: 8, retain: false, dup: false });
  assert.equal((await c.next('pubrec')).messageId, 8);
  c.send({ cmd: 'pubrel', messageId: 8 });
  assert.equal((await c.next('pubcomp')).messageId, 8);
});

test('[MQTT-4.3.2-1] [MQTT-2.3.1-1] [MQTT-4.3.3-1] outbound QoS 1/2 use non-zero, distinct packet ids and complete their flows', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'out/#', 2);
  const p = await client(t, b, 4);
  await publish(p, 'out/1', 'a', 1);
  await publish(p, 'out/2', 'b', 1);
  const m1 = await receive(s, false);
  const m2 = await receive(s, false);
  assert.equal(m1.qos, 1);
  assert.ok(m1.messageId! > 0 && m2.messageId! > 0 && m1.messageId !== m2.messageId);
  assert.equal(m1.dup, false);
  s.send({ cmd: 'puback', messageId: m1.messageId });
  s.send({ cmd: 'puback', messageId: m2.messageId });
  await publish(p, 'out/3', 'c', 2);
  const m3 = await receive(s, false);
  assert.equal(m3.qos, 2);
  s.send({ cmd: 'pubrec', messageId: m3.messageId });
  assert.equal((await s.next('pubrel')).messageId, m3.messageId);
  s.send({ cmd: 'pubcomp', messageId: m3.messageId });
  await sync(s);
});

test('[MQTT-4.3.3-2] a QoS 2 PUBLISH re-sent before PUBREL is acknowledged again but delivered once', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'once', 2);
  const p = await client(t, b, 4);
  const msg = { cmd: 'publish' as const, topic: 'once', payload: 'x', qos: 2 as const, messageId: 42, retain: false, dup: false };
  p.send(msg);
  assert.equal((await p.next('pubrec')).messageId, 42);
  p.send({ ...msg, dup: true });
  assert.equal((await p.next('pubrec')).messageId, 42);
  p.send({ cmd: 'pubrel', messageId: 42 });
  assert.equal((await p.next('pubcomp')).messageId, 42);
  await receive(s);
  assert.ok(await s.nothingWithin(300), 'exactly one copy');
  // After PUBCOMP the id starts a new publication.
  p.send(msg);
  assert.equal((await p.next('pubrec')).messageId, 42);
  p.send({ cmd: 'pubrel', messageId: 42 });
  await p.next('pubcomp');
  await receive(s);
});

test('[MQTT-4.3.3-2] exactly once holds across a reconnect of a CleanSession 0 publisher', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'once/resume', 2);
  const id = uid();
  const p = await client(t, b, 4, { clientId: id, clean: false });
  const msg = { cmd: 'publish' as const, topic: 'once/resume', payload: 'x', qos: 2 as const, messageId: 9, retain: false, dup: false };
  p.send(msg);
  await p.next('pubrec');
  p.destroy();
  const p2 = await client(t, b, 4, { clientId: id, clean: false });
  p2.send({ ...msg, dup: true });
  assert.equal((await p2.next('pubrec')).messageId, 9);
  p2.send({ cmd: 'pubrel', messageId: 9 });
  assert.equal((await p2.next('pubcomp')).messageId, 9);
  await receive(s);
  assert.ok(await s.nothingWithin(300), 'exactly one copy');
});

test('[MQTT-4.6.0-2] [MQTT-4.6.0-3] PUBACK and PUBREC are sent in the order the PUBLISH packets arrived', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 4);
  const ids = [11, 12, 13, 14, 15, 16];
  ids.forEach((messageId, i) =>
    p.send({ cmd: 'publish', topic: `order/${i}`, payload: 'x', qos: i % 2 ? 2 : 1, messageId, retain: i === 2, dup: false }),
  );
  const got = [];
  for (let i = 0; i < ids.length; i++) got.push((await p.next()).messageId);
  assert.deepEqual(got, ids);
});

test('[MQTT-4.6.0-5] [MQTT-4.6.0-6] messages from one publisher reach a subscriber in order', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'seq', 1);
  const p = await client(t, b, 4);
  for (let i = 0; i < 30; i++) p.send({ cmd: 'publish', topic: 'seq', payload: String(i), qos: 1, messageId: i + 1, retain: false, dup: false });
  const got = [];
  for (let i = 0; i < 30; i++) got.push(Number(text(await receive(s))));
  assert.deepEqual(got, [...Array(30).keys()]);
});

test('[MQTT-3.3.1-1] [MQTT-4.4.0-1] unacknowledged QoS 1/2 PUBLISH are re-sent with DUP 1 and the same id on resume', async (t) => {
  const b = await broker(t);
  const id = uid();
  const s = await client(t, b, 4, { clientId: id, clean: false });
  await subscribe(s, 'redo/#', 2);
  const p = await client(t, b, 4);
  await publish(p, 'redo/1', 'one', 1);
  await publish(p, 'redo/2', 'two', 2);
  const a = await receive(s, false);
  const c = await receive(s, false);
  s.destroy();
  const s2 = await client(t, b, 4, { clientId: id, clean: false });
  const a2 = await receive(s2, false);
  const c2 = await receive(s2, false);
  assert.deepEqual([a2.messageId, a2.dup, text(a2)], [a.messageId, true, 'one']);
  assert.deepEqual([c2.messageId, c2.dup, text(c2)], [c.messageId, true, 'two']);
});

test('[MQTT-4.4.0-1] a PUBREL not yet completed is re-sent on resume', async (t) => {
  const b = await broker(t);
  const id = uid();
  const s = await client(t, b, 4, { clientId: id, clean: false });
  await subscribe(s, 'rel', 2);
  const p = await client(t, b, 4);
  await publish(p, 'rel', 'x', 2);
  const m = await receive(s, false);
  s.send({ cmd: 'pubrec', messageId: m.messageId });
  assert.equal((await s.next('pubrel')).messageId, m.messageId);
  s.destroy();
  const s2 = await client(t, b, 4, { clientId: id, clean: false });
  const rel = await s2.next();
  assert.deepEqual([rel.cmd, rel.messageId], ['pubrel', m.messageId]);
  s2.send({ cmd: 'pubcomp', messageId: m.messageId });
  assert.ok(await s2.nothingWithin(200), 'the PUBLISH is not sent again after PUBREL');
});

test('[MQTT-3.3.1-2] [MQTT-3.3.1-3] DUP is 0 on QoS 0 and on first delivery even if the incoming PUBLISH had DUP 1', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'dup/#', 1);
  const p = await client(t, b, 4);
  await publish(p, 'dup/0', 'a', 0);
  await publish(p, 'dup/1', 'b', 1, { dup: true });
  const m0 = await receive(s);
  const m1 = await receive(s);
  assert.deepEqual([m0.dup, m1.dup], [false, false]);
});

test('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set closes the connection', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.sendBytes([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]);
  await c.expectClose();
});

test('[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] a retained message is stored and sent with RETAIN 1 to new subscribers', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 4);
  await publish(p, 'ret/a', 'r1', 1, { retain: true });
  const s = await client(t, b, 4);
  await subscribe(s, 'ret/+', 1);
  const m = await receive(s);
  assert.deepEqual([text(m), m.retain, m.qos], ['r1', true, 1]);
});

test('[MQTT-3.3.1-7] a retained QoS 0 message replaces the previous retained message', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 4);
  await publish(p, 'ret/b', 'old', 1, { retain: true });
  await publish(p, 'ret/b', 'new', 0, { retain: true });
  await sync(p);
  const s = await client(t, b, 4);
  await subscribe(s, 'ret/b', 1);
  const m = await receive(s);
  assert.deepEqual([text(m), m.qos], ['new', 0]);
  assert.ok(await s.nothingWithin(200));
});

test('[MQTT-3.3.1-9] messages to an established subscription have RETAIN 0', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'ret/c', 0);
  const p = await client(t, b, 4);
  await publish(p, 'ret/c', 'live', 1, { retain: true });
  const m = await receive(s);
  assert.equal(m.retain, false);
});

test('[MQTT-3.3.1-10] [MQTT-3.3.1-11] a zero-byte retained message removes the retained message and is not stored', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 4);
  await publish(p, 'ret/d', 'x', 1, { retain: true });
  const live = await client(t, b, 4);
  await subscribe(live, 'ret/d', 0);
  await receive(live); // the retained one
  await publish(p, 'ret/d', '', 1, { retain: true });
  const m = await receive(live); // processed normally for existing subscribers
  assert.equal(m.payload.length, 0);
  const s = await client(t, b, 4);
  await subscribe(s, 'ret/d', 0);
  assert.ok(await s.nothingWithin(300), 'nothing retained');
});

test('[MQTT-3.3.1-12] a PUBLISH with RETAIN 0 neither stores nor removes the retained message', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 4);
  await publish(p, 'ret/e', 'kept', 1, { retain: true });
  await publish(p, 'ret/e', 'plain', 1);
  await publish(p, 'ret/e', '', 1);
  const s = await client(t, b, 4);
  await subscribe(s, 'ret/e', 0);
  assert.equal(text(await receive(s)), 'kept');
  assert.ok(await s.nothingWithin(200));
});

test('[MQTT-3.3.2-2] [MQTT-4.7.1-1] a PUBLISH topic with a wildcard closes the connection', async (t) => {
  const b = await broker(t);
  for (const topic of ['a/+', 'a/#']) {
    const c = await client(t, b, 4);
    c.send({ cmd: 'publish', topic, payload: 'x', qos: 0, retain: false, dup: false });
    await c.expectClose();
  }
});

test('[MQTT-4.7.3-1] [MQTT-4.7.3-2] an empty topic name or one with U+0000 closes the connection', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.sendBytes([0x30, 0x03, 0x00, 0x00, 0x61]);
  await c.expectClose();
  const d = await client(t, b, 4);
  d.sendBytes([0x30, 0x05, 0x00, 0x03, 0x61, 0x00, 0x62]);
  await d.expectClose();
});

test('[MQTT-1.5.3-1] a topic name with ill-formed UTF-8 closes the connection', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.sendBytes([0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x61]);
  await c.expectClose();
  const d = await client(t, b, 4);
  // U+D800 encoded as UTF-8 (a surrogate code point)
  d.sendBytes([0x30, 0x06, 0x00, 0x03, 0xed, 0xa0, 0x80, 0x61]);
  await d.expectClose();
});

test('[MQTT-1.5.3-3] [MQTT-4.7.3-4] a leading U+FEFF is not stripped and topics are not normalized', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, '\uFEFFbom/+', 0);
  const p = await client(t, b, 4);
  await publish(p, 'bom/x', 'no', 0);
  await publish(p, '\uFEFFbom/x', 'yes', 0);
  const m = await receive(s);
  assert.deepEqual([m.topic, text(m)], ['\uFEFFbom/x', 'yes']);
});

test('[MQTT-3.3.2-3] [MQTT-4.7.1-2] [MQTT-4.7.1-3] the delivered topic name is the published one, matching the filter', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'sport/+/player1/#', 0);
  const p = await client(t, b, 4);
  await publish(p, 'sport/tennis/player2', 'no', 0);
  await publish(p, 'sport/tennis/player1', 'yes', 0);
  await publish(p, 'sport/tennis/player1/score/x', 'yes2', 0);
  const m1 = await receive(s);
  const m2 = await receive(s);
  assert.deepEqual([m1.topic, m2.topic], ['sport/tennis/player1', 'sport/tennis/player1/score/x']);
});

test('[MQTT-4.7.2-1] topics starting with $ are not matched by filters starting with # or +', async (t) => {
  const b = await broker(t);
  const all = await client(t, b, 4);
  await subscribe(all, '#', 0);
  const plus = await client(t, b, 4);
  await subscribe(plus, '+/x', 0);
  const dollar = await client(t, b, 4);
  await subscribe(dollar, '$app/#', 0);
  const p = await client(t, b, 4);
  await publish(p, '$app/x', 'hidden', 0);
  assert.equal(text(await receive(dollar)), 'hidden');
  assert.ok(await all.nothingWithin(200));
  assert.ok(await plus.nothingWithin(50));
});

test('[MQTT-3.3.5-1] with overlapping subscriptions the message is delivered at the highest granted QoS', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'ov/#', 0);
  await subscribe(s, 'ov/+', 2);
  const p = await client(t, b, 4);
  await publish(p, 'ov/x', 'x', 2);
  const m = await receive(s);
  assert.equal(m.qos, 2);
});

test('[MQTT-3.3.5-2] an unauthorized PUBLISH is acknowledged positively (or closed) and not delivered', async (t) => {
  const deny: Authorizer = { ...allowAll, authorizePublish: (_c, topic) => !topic.startsWith('deny') };
  const b = await broker(t, {}, { authorizer: deny });
  const s = await client(t, b, 4);
  await subscribe(s, 'deny/#', 1);
  const p = await client(t, b, 4);
  p.send({ cmd: 'publish', topic: 'deny/x', payload: 'x', qos: 1, messageId: 3, retain: false, dup: false });
  const ack = await p.next('puback');
  assert.equal(ack.messageId, 3);
  assert.ok(await s.nothingWithin(200));
});

test('[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] one SUBACK, same id, one code per filter in order', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.send({
    cmd: 'subscribe',
    messageId: 77,
    subscriptions: [
      { topic: 'm/a', qos: 2 },
      { topic: 'm/#/bad', qos: 1 },
      { topic: 'm/b', qos: 0 },
      { topic: 'm/c', qos: 1 },
    ],
  });
  const ack = (await c.next('suback')) as ISubackPacket;
  assert.equal(ack.messageId, 77);
  assert.deepEqual(ack.granted, [2, 0x80, 0, 1]);
});

test('[MQTT-3.8.4-6] delivery QoS is the minimum of the published QoS and the granted QoS', async (t) => {
  const b = await broker(t, { mqtt: { maxQos: 1 } });
  const s = await client(t, b, 4);
  const ack = await subscribe(s, 'min/#', 2);
  assert.deepEqual(ack.granted, [1]);
  const p = await client(t, b, 4);
  await publish(p, 'min/a', 'x', 1);
  assert.equal((await receive(s)).qos, 1);
  await publish(p, 'min/b', 'y', 0);
  assert.equal((await receive(s)).qos, 0);
});

test('[MQTT-3.8.4-3] a SUBSCRIBE for an existing filter replaces it and re-sends retained messages', async (t) => {
  const b = await broker(t);
  const p = await client(t, b, 4);
  await publish(p, 'rep/x', 'kept', 2, { retain: true });
  const s = await client(t, b, 4);
  await subscribe(s, 'rep/x', 0);
  assert.equal((await receive(s)).qos, 0);
  await subscribe(s, 'rep/x', 2);
  const again = await receive(s);
  assert.deepEqual([text(again), again.qos, again.retain], ['kept', 2, true]);
  await publish(p, 'rep/x', 'new', 2);
  const m = await receive(s);
  assert.equal(m.qos, 2);
  assert.ok(await s.nothingWithin(200), 'one subscription, not two');
});

test('[MQTT-3.8.1-1] [MQTT-3.10.1-1] [MQTT-3.6.1-1] wrong reserved header flags on SUBSCRIBE, UNSUBSCRIBE, PUBREL close the connection', async (t) => {
  const b = await broker(t);
  const bad = [
    [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00],
    [0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],
    [0x60, 0x02, 0x00, 0x01],
  ];
  for (const bytes of bad) {
    const c = await client(t, b, 4);
    c.sendBytes(bytes);
    await c.expectClose();
  }
});

test('[MQTT-3.8.3-3] [MQTT-3.10.3-2] SUBSCRIBE or UNSUBSCRIBE without a topic filter closes the connection', async (t) => {
  const b = await broker(t);
  for (const bytes of [[0x82, 0x02, 0x00, 0x01], [0xa2, 0x02, 0x00, 0x01]]) {
    const c = await client(t, b, 4);
    c.sendBytes(bytes);
    await c.expectClose();
  }
});

test('[MQTT-3.8.3-4] a SUBSCRIBE with requested QoS 3 or reserved bits set closes the connection', async (t) => {
  const b = await broker(t);
  for (const opt of [0x03, 0x04]) {
    const c = await client(t, b, 4);
    c.sendBytes([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, opt]);
    await c.expectClose();
  }
});

test('[MQTT-4.7.1-2] [MQTT-4.7.1-3] an invalid topic filter is refused (SUBACK 0x80 or close)', async (t) => {
  const b = await broker(t);
  for (const topic of ['a/#/b', 'a+/b', 'a/b#']) {
    const c = await client(t, b, 4);
    c.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic, qos: 0 }] });
    const got = await Promise.race([c.next('suback').then((p) => (p as ISubackPacket).granted[0]), c.closedPromise.then(() => 'closed')]);
    assert.ok(got === 0x80 || got === 'closed', `${topic}: ${got}`);
  }
});

test('[MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-4] [MQTT-3.10.4-5] UNSUBSCRIBE deletes the exact filter; UNSUBACK with the same id', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'un/+', 0);
  await subscribe(s, 'un/a', 0);
  s.send({ cmd: 'unsubscribe', messageId: 31, unsubscriptions: ['un/+'] });
  assert.equal(((await s.next('unsuback')) as IUnsubackPacket).messageId, 31);
  const p = await client(t, b, 4);
  await publish(p, 'un/b', 'gone', 0);
  await publish(p, 'un/a', 'still', 0);
  assert.equal(text(await receive(s)), 'still');
  assert.ok(await s.nothingWithin(200));
  s.send({ cmd: 'unsubscribe', messageId: 32, unsubscriptions: ['never/subscribed'] });
  assert.equal((await s.next('unsuback')).messageId, 32);
});

test('[MQTT-3.10.4-6] an UNSUBSCRIBE with several filters gets one UNSUBACK', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'mu/a', 0);
  await subscribe(s, 'mu/b', 0);
  s.send({ cmd: 'unsubscribe', messageId: nextId(), unsubscriptions: ['mu/a', 'mu/b'] });
  await s.next('unsuback');
  const p = await client(t, b, 4);
  await publish(p, 'mu/a', 'x', 0);
  await publish(p, 'mu/b', 'x', 0);
  assert.ok(await s.nothingWithin(300), 'both removed, one UNSUBACK');
});

test('[MQTT-3.10.4-3] in-flight QoS 1 deliveries are completed after UNSUBSCRIBE', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 4);
  await subscribe(s, 'inf', 1);
  const p = await client(t, b, 4);
  await publish(p, 'inf', 'x', 1);
  const m = await receive(s, false);
  s.send({ cmd: 'unsubscribe', messageId: 40, unsubscriptions: ['inf'] });
  await s.next('unsuback');
  s.send({ cmd: 'puback', messageId: m.messageId });
  await sync(s);
  assert.equal(s.closed, false);
});

test('[MQTT-3.12.4-1] PINGREQ gets PINGRESP', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.send({ cmd: 'pingreq' });
  assert.equal((await c.next()).cmd, 'pingresp');
});

test('[MQTT-3.14.1-1] a DISCONNECT with reserved flags set closes the connection and the will is published', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 4);
  await subscribe(w, 'will/bad', 0);
  const c = await client(t, b, 4, { will: { topic: 'will/bad', payload: Buffer.from('w'), qos: 0, retain: false } });
  c.sendBytes([0xe1, 0x00]);
  await c.expectClose();
  assert.equal(text(await receive(w)), 'w');
});

test('[MQTT-4.8.0-1] a packet a client never sends (CONNACK, SUBACK) closes the connection', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.send({ cmd: 'connack', sessionPresent: false, returnCode: 0 });
  await c.expectClose();
  const d = await raw(t, b, 4);
  await d.handshake();
  d.send({ cmd: 'suback', messageId: 1, granted: [0] });
  await d.expectClose();
});

test('[MQTT-2.3.1-1] a QoS 1 PUBLISH with packet id 0 closes the connection', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.sendBytes([0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00]);
  await c.expectClose();
});
