/**
 * MQTT 3.1.1 conformance over TCP: CONNECT / CONNACK, sessions, wills, keep alive, takeover.
 * One test per normative statement of the OASIS MQTT 3.1.1 standard.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IConnackPacket } from 'mqtt-packet';
import { broker, client, connect, connectBytes, publish, raw, receive, sleep, subscribe, sync, text, uid } from './helpers.js';

test('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 4);
  c.send({ cmd: 'pingreq' });
  const got = await c.expectClose();
  assert.deepEqual(got, []);
});

test('[MQTT-3.1.0-2] a second CONNECT is a protocol violation and closes the connection', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uid(), clean: true, keepalive: 60 });
  const got = await c.expectClose();
  assert.ok(!got.some((p) => p.cmd === 'connack'), 'no second CONNACK');
});

test('[MQTT-3.1.2-1] an incorrect protocol name is not processed as MQTT 3.1.1 (closed, no CONNACK)', async (t) => {
  const b = await broker(t);
  for (const name of ['MQTX', 'MQIsdp']) {
    const c = await raw(t, b, 4);
    // 'MQIsdp' is the 3.1 name; with level 4 it is not a 3.1.1 CONNECT either.
    c.sendBytes(connectBytes({ name, level: 4, flags: 0x02 }));
    const got = await c.expectClose();
    assert.ok(!got.some((p) => p.cmd === 'connack' && (p as IConnackPacket).returnCode === 0), `${name}: not accepted`);
  }
});

test('[MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01 and the connection is closed', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 4);
  c.sendBytes(connectBytes({ level: 7, flags: 0x02 }));
  const got = await c.expectClose();
  assert.equal(got.length, 1);
  assert.equal(got[0]!.cmd, 'connack');
  assert.equal((got[0] as IConnackPacket).returnCode, 1);
});

test('[MQTT-3.1.2-3] a CONNECT with the reserved flag set closes the connection', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 4);
  c.sendBytes(connectBytes({ flags: 0x03 }));
  const got = await c.expectClose();
  assert.ok(!got.some((p) => p.cmd === 'connack' && (p as IConnackPacket).returnCode === 0));
});

test('[MQTT-3.1.2-4] [MQTT-3.2.2-2] CleanSession 0 resumes the session: subscriptions kept, Session Present 1', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 4, { clientId: id, clean: false });
  await subscribe(a, 'cs0/t', 1);
  a.send({ cmd: 'disconnect' });
  await a.expectClose();
  const { c, connack } = await connect(t, b, 4, { clientId: id, clean: false });
  assert.equal(connack.sessionPresent, true);
  const p = await client(t, b, 4);
  await publish(p, 'cs0/t', 'hello', 1);
  assert.equal(text(await receive(c)), 'hello');
});

test('[MQTT-3.1.2-5] [MQTT-4.5.0-1] QoS 1 and 2 messages are stored for a disconnected CleanSession 0 client', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 4, { clientId: id, clean: false });
  await subscribe(a, 'offline/#', 2);
  a.send({ cmd: 'disconnect' });
  await a.expectClose();
  const p = await client(t, b, 4);
  await publish(p, 'offline/1', 'one', 1);
  await publish(p, 'offline/2', 'two', 2);
  const c = await client(t, b, 4, { clientId: id, clean: false });
  const m1 = await receive(c);
  const m2 = await receive(c);
  assert.deepEqual([text(m1), m1.qos, text(m2), m2.qos], ['one', 1, 'two', 2]);
});

test('[MQTT-3.1.2-6] [MQTT-3.2.2-1] CleanSession 1 discards the previous session; Session Present 0', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 4, { clientId: id, clean: false });
  await subscribe(a, 'clean/t', 1);
  a.send({ cmd: 'disconnect' });
  await a.expectClose();
  const { c, connack } = await connect(t, b, 4, { clientId: id, clean: true });
  assert.equal(connack.sessionPresent, false);
  const p = await client(t, b, 4);
  await publish(p, 'clean/t', 'x', 1);
  assert.ok(await c.nothingWithin(300), 'old subscription is gone');
});

test('[MQTT-3.2.2-3] Session Present is 0 when CleanSession 0 finds no session', async (t) => {
  const b = await broker(t);
  const { connack } = await connect(t, b, 4, { clientId: uid(), clean: false });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.1.2-7] retained messages are not deleted when the session ends', async (t) => {
  const b = await broker(t);
  const a = await client(t, b, 4, { clean: true });
  await publish(a, 'keep/r', 'kept', 1, { retain: true });
  a.send({ cmd: 'disconnect' });
  await a.expectClose();
  const c = await client(t, b, 4);
  await subscribe(c, 'keep/r', 1);
  assert.equal(text(await receive(c)), 'kept');
});

const will = (topic: string, extra: { qos?: 0 | 1 | 2; retain?: boolean } = {}) => ({
  will: { topic, payload: Buffer.from('gone'), qos: extra.qos ?? 0, retain: extra.retain ?? false },
});

test('[MQTT-3.1.2-8] the will is published when the connection closes without DISCONNECT', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 4);
  await subscribe(w, 'will/abnormal', 0);
  const c = await client(t, b, 4, will('will/abnormal'));
  c.destroy();
  const m = await receive(w);
  assert.equal(text(m), 'gone');
});

test('[MQTT-3.1.2-10] [MQTT-3.14.4-3] no will after DISCONNECT', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 4);
  await subscribe(w, 'will/normal', 0);
  const c = await client(t, b, 4, will('will/normal'));
  c.send({ cmd: 'disconnect' });
  await c.expectClose();
  assert.ok(await w.nothingWithin(300));
});

test('[MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] Will QoS or Will Retain set without the Will Flag closes the connection', async (t) => {
  const b = await broker(t);
  for (const flags of [0x02 | 0x08, 0x02 | 0x20]) {
    const c = await raw(t, b, 4);
    c.sendBytes(connectBytes({ flags }));
    const got = await c.expectClose();
    assert.ok(!got.some((p) => p.cmd === 'connack' && (p as IConnackPacket).returnCode === 0), `flags ${flags}`);
  }
});

test('[MQTT-3.1.2-14] Will QoS 3 closes the connection', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 4);
  const wt = Buffer.from('w');
  const rest = Buffer.concat([Buffer.from([0, 1]), wt, Buffer.from([0, 1, 0x41])]);
  c.sendBytes(connectBytes({ flags: 0x02 | 0x04 | 0x18, rest }));
  const got = await c.expectClose();
  assert.ok(!got.some((p) => p.cmd === 'connack' && (p as IConnackPacket).returnCode === 0));
});

test('[MQTT-3.1.2-16] a will with Will Retain 0 is published non-retained, at its Will QoS', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 4);
  await subscribe(w, 'will/nr', 2);
  const c = await client(t, b, 4, will('will/nr', { qos: 1 }));
  c.destroy();
  const m = await receive(w);
  assert.equal(m.retain, false);
  assert.equal(m.qos, 1);
  const late = await client(t, b, 4);
  await subscribe(late, 'will/nr', 0);
  assert.ok(await late.nothingWithin(200), 'not stored as retained');
});

test('[MQTT-3.1.2-17] a will with Will Retain 1 is published as a retained message', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 4, will('will/r', { retain: true }));
  c.destroy();
  await c.closedPromise;
  await sleep(100);
  const late = await client(t, b, 4);
  await subscribe(late, 'will/r', 0);
  const m = await receive(late);
  assert.equal(text(m), 'gone');
  assert.equal(m.retain, true);
});

test('[MQTT-3.1.2-22] [MQTT-3.1.4-1] a password without a user name is refused (connection closed)', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 4);
  c.sendBytes(connectBytes({ flags: 0x02 | 0x40, rest: Buffer.from([0, 2, 0x70, 0x77]) }));
  const got = await c.expectClose();
  assert.ok(!got.some((p) => p.cmd === 'connack' && (p as IConnackPacket).returnCode === 0));
});

test('[MQTT-3.1.2-24] no packet within 1.5 x Keep Alive closes the connection; PINGREQ keeps it open', async (t) => {
  const b = await broker(t);
  const idle = await client(t, b, 4, { keepalive: 1 });
  const busy = await client(t, b, 4, { keepalive: 1 });
  for (let i = 0; i < 5; i++) {
    await sleep(500);
    await sync(busy);
  }
  assert.equal(busy.closed, false, 'a client that pings stays connected');
  await idle.expectClose(5000);
});

test('[MQTT-3.1.2-24] the will is published when the keep alive expires', async (t) => {
  const b = await broker(t);
  const w = await client(t, b, 4);
  await subscribe(w, 'will/ka', 0);
  await client(t, b, 4, { keepalive: 1, ...will('will/ka') });
  assert.equal(text(await receive(w, true, 5000)), 'gone');
});

test('[MQTT-3.1.3-5] a 23-character alphanumeric client id is accepted', async (t) => {
  const b = await broker(t);
  await connect(t, b, 4, { clientId: 'abcdefghijKLMNOPQRST012' });
});

test('[MQTT-3.1.3-6] a zero-length client id with CleanSession 1 is accepted', async (t) => {
  const b = await broker(t);
  const { c } = await connect(t, b, 4, { clientId: '', clean: true });
  await subscribe(c, 'anon', 0);
  await publish(c, 'anon', 'me', 0);
  assert.equal(text(await receive(c)), 'me');
});

test('[MQTT-3.1.3-8] [MQTT-3.2.2-4] [MQTT-3.2.2-5] a zero-length client id with CleanSession 0 gets CONNACK 0x02, Session Present 0, then close', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 4);
  c.sendBytes(connectBytes({ flags: 0x00, clientId: '' }));
  const got = await c.expectClose();
  assert.equal(got.length, 1);
  const ack = got[0] as IConnackPacket;
  assert.equal(ack.returnCode, 2);
  assert.equal(ack.sessionPresent, false);
});

test('[MQTT-3.1.4-2] a CONNECT with the client id of a connected client closes the existing connection', async (t) => {
  const b = await broker(t);
  const id = uid();
  const first = await client(t, b, 4, { clientId: id });
  const second = await client(t, b, 4, { clientId: id });
  await first.expectClose();
  await subscribe(second, 'takeover', 0);
  await publish(second, 'takeover', 'ok', 0);
  assert.equal(text(await receive(second)), 'ok');
});

test('[MQTT-3.1.4-5] data sent after a refused CONNECT is not processed', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 4);
  c.sendBytes(connectBytes({ flags: 0x00, clientId: '' }));
  c.send({ cmd: 'publish', topic: 'refused/r', payload: 'x', qos: 0, retain: true, dup: false });
  await c.expectClose();
  const s = await client(t, b, 4);
  await subscribe(s, 'refused/r', 0);
  assert.ok(await s.nothingWithin(200), 'the PUBLISH after the refused CONNECT was ignored');
});

test('[MQTT-3.1.2-2] a supported level is accepted: MQTT 3.1 (MQIsdp, level 3) clients connect', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 3);
  const ack = await c.handshake({ clientId: 'v31client' });
  assert.equal(ack.returnCode, 0);
});
