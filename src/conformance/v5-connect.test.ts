/**
 * MQTT 5.0 conformance over TCP: CONNECT / CONNACK, capabilities announced in CONNACK, keep
 * alive, enhanced authentication.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IAuthPacket, IConnackPacket, IDisconnectPacket, IPubackPacket } from 'mqtt-packet';
import { allowAll, type EnhancedAuthMethod } from '../auth/types.js';
import { broker, client, closedWith, connect, connectBytes, publish, raw, receive, sleep, subscribe, sync, uid } from './helpers.js';

test('[MQTT-3.1.0-2] [MQTT-3.2.0-2] a second CONNECT gets DISCONNECT 0x82 and no second CONNACK', async (t) => {
  const b = await broker(t);
  const c = await client(t, b, 5);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uid(), clean: true, keepalive: 60 });
  const rest = await c.expectClose();
  assert.ok(!rest.some((p) => p.cmd === 'connack'));
  assert.equal((rest.find((p) => p.cmd === 'disconnect') as IDisconnectPacket | undefined)?.reasonCode, 0x82);
});

test('[MQTT-3.1.2-3] [MQTT-3.1.4-1] a CONNECT with the reserved flag set is refused and closed', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 5);
  c.sendBytes(connectBytes({ level: 5, flags: 0x03, v5Props: true }));
  const got = await c.expectClose();
  assert.ok(!got.some((p) => p.cmd === 'connack' && (p as IConnackPacket).reasonCode === 0));
});

test('[MQTT-3.1.2-4] [MQTT-3.2.2-2] Clean Start 1 discards the session and Session Present is 0', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, properties: { sessionExpiryInterval: 60 } });
  await subscribe(a, 'cs5/t', 1);
  a.send({ cmd: 'disconnect', reasonCode: 0 });
  await a.expectClose();
  const { c, connack } = await connect(t, b, 5, { clientId: id, clean: true, properties: { sessionExpiryInterval: 60 } });
  assert.equal(connack.sessionPresent, false);
  const p = await client(t, b, 5);
  await publish(p, 'cs5/t', 'x', 1);
  assert.ok(await c.nothingWithin(300));
});

test('[MQTT-3.1.2-5] [MQTT-3.2.2-3] [MQTT-3.1.2-23] Clean Start 0 resumes a stored session with Session Present 1', async (t) => {
  const b = await broker(t);
  const id = uid();
  const a = await client(t, b, 5, { clientId: id, properties: { sessionExpiryInterval: 60 } });
  await subscribe(a, 'res5/t', 1);
  a.send({ cmd: 'disconnect', reasonCode: 0 });
  await a.expectClose();
  const p = await client(t, b, 5);
  await publish(p, 'res5/t', 'queued', 1);
  const { c, connack } = await connect(t, b, 5, { clientId: id, clean: false, properties: { sessionExpiryInterval: 60 } });
  assert.equal(connack.sessionPresent, true);
  assert.equal((await receive(c)).payload.toString(), 'queued');
});

test('[MQTT-3.1.2-6] Clean Start 0 without a session creates one (Session Present 0)', async (t) => {
  const b = await broker(t);
  const { connack } = await connect(t, b, 5, { clientId: uid(), clean: false });
  assert.equal(connack.sessionPresent, false);
});

test('[MQTT-3.1.2-22] no packet within 1.5 x Keep Alive closes the connection; PINGREQ keeps it open', async (t) => {
  const b = await broker(t);
  const idle = await client(t, b, 5, { keepalive: 1 });
  const busy = await client(t, b, 5, { keepalive: 1 });
  for (let i = 0; i < 5; i++) {
    await sleep(500);
    await sync(busy);
  }
  assert.equal(busy.closed, false);
  const d = (await closedWith(idle, 5000)) as IDisconnectPacket | undefined;
  if (d) assert.equal(d.reasonCode, 0x8d);
});

test('[MQTT-3.2.2-21] [MQTT-3.2.2-22] Server Keep Alive replaces the client value and is enforced', async (t) => {
  const b = await broker(t, { limits: { maxKeepAliveSec: 1 } });
  const { c, connack } = await connect(t, b, 5, { keepalive: 60 });
  assert.equal(connack.properties?.serverKeepAlive, 1);
  await c.expectClose(5000);
  const { connack: plain } = await connect(t, await broker(t), 5, { keepalive: 60 });
  assert.equal(plain.properties?.serverKeepAlive, undefined, 'no Server Keep Alive when the client value is kept');
});

test('[MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] an empty client id gets a new, unique Assigned Client Identifier', async (t) => {
  const b = await broker(t);
  const { connack: a } = await connect(t, b, 5, { clientId: '' });
  const { connack: c } = await connect(t, b, 5, { clientId: '' });
  const ida = a.properties?.assignedClientIdentifier;
  const idc = c.properties?.assignedClientIdentifier;
  assert.ok(ida && idc && ida !== idc);
  const { connack: named } = await connect(t, b, 5, { clientId: uid() });
  assert.equal(named.properties?.assignedClientIdentifier, undefined);
});

test('[MQTT-3.1.3-8] [MQTT-3.2.2-6] [MQTT-3.2.2-7] a refused client id gets CONNACK 0x85, Session Present 0, then close', async (t) => {
  const b = await broker(t, { mqtt: { allowZeroLengthClientId: false } });
  const c = await raw(t, b, 5);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: '', clean: true, keepalive: 60 });
  const got = await c.expectClose();
  assert.equal(got.length, 1);
  assert.deepEqual([got[0]!.cmd, (got[0] as IConnackPacket).reasonCode, (got[0] as IConnackPacket).sessionPresent], ['connack', 0x85, false]);
});

test('[MQTT-3.1.4-6] nothing sent after a refused CONNECT is processed', async (t) => {
  const b = await broker(t, { mqtt: { allowZeroLengthClientId: false } });
  const c = await raw(t, b, 5);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: '', clean: true, keepalive: 60 });
  c.send({ cmd: 'publish', topic: 'refused5', payload: 'x', qos: 0, retain: true, dup: false });
  await c.expectClose();
  const s = await client(t, b, 5);
  await subscribe(s, 'refused5', 0);
  assert.ok(await s.nothingWithin(200));
});

test('[MQTT-3.2.2-9] [MQTT-3.2.2-10] [MQTT-3.2.2-11] Maximum QoS is announced, SUBSCRIBE QoS 2 accepted, PUBLISH above it gets 0x9B', async (t) => {
  const b = await broker(t, { mqtt: { maxQos: 1 } });
  const { c, connack } = await connect(t, b, 5);
  assert.equal(connack.properties?.maximumQoS, 1);
  assert.deepEqual((await subscribe(c, 'mq/#', 2)).granted, [1]);
  c.send({ cmd: 'publish', topic: 'mq/x', payload: 'x', qos: 2, messageId: 1, retain: false, dup: false });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x9b);
});

test('[MQTT-3.2.2-12] a Will QoS above Maximum QoS gets CONNACK 0x9B', async (t) => {
  const b = await broker(t, { mqtt: { maxQos: 1 } });
  const c = await raw(t, b, 5);
  const ack = await c.handshake({ will: { topic: 'w', payload: Buffer.from('x'), qos: 2, retain: false } });
  assert.equal(ack.reasonCode, 0x9b);
  await c.expectClose();
});

test('[MQTT-3.2.2-13] [MQTT-3.2.2-14] without retain support: Retain Available 0, will retain gets 0x9A, PUBLISH retain gets DISCONNECT 0x9A', async (t) => {
  const b = await broker(t, { mqtt: { retainAvailable: false } });
  const w = await raw(t, b, 5);
  const refused = await w.handshake({ will: { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: true } });
  assert.equal(refused.reasonCode, 0x9a);
  const { c, connack } = await connect(t, b, 5);
  assert.equal(connack.properties?.retainAvailable, false);
  c.send({ cmd: 'publish', topic: 'r', payload: 'x', qos: 0, retain: true, dup: false });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x9a);
});

test('[MQTT-3.1.2-28] Response Information only when requested', async (t) => {
  const b = await broker(t);
  const { connack: no } = await connect(t, b, 5, { properties: { requestResponseInformation: false } });
  assert.equal(no.properties?.responseInformation, undefined);
  const { connack: yes } = await connect(t, b, 5, { properties: { requestResponseInformation: true } });
  assert.equal(typeof yes.properties?.responseInformation, 'string');
});

test('[MQTT-3.1.2-29] with Request Problem Information 0 no Reason String is sent on PUBACK', async (t) => {
  const deny = { ...allowAll, authorizePublish: () => false };
  const b = await broker(t, {}, { authorizer: deny });
  for (const rpi of [true, false]) {
    const c = await client(t, b, 5, { properties: { requestProblemInformation: rpi } });
    c.send({ cmd: 'publish', topic: 'rpi', payload: 'x', qos: 1, messageId: 2, retain: false, dup: false });
    const ack = (await c.next('puback')) as IPubackPacket;
    assert.equal(ack.reasonCode, 0x87);
    assert.equal(ack.properties?.reasonString !== undefined, rpi, `request problem information ${rpi}`);
  }
});

test('[MQTT-3.1.2-26] [MQTT-3.1.2-27] the server sends no Topic Alias above the client maximum (none when absent)', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'ta/out', 0);
  const p = await client(t, b, 5);
  await publish(p, 'ta/out', 'x', 0);
  await publish(p, 'ta/out', 'y', 0);
  for (let i = 0; i < 2; i++) {
    const m = await receive(s);
    assert.equal(m.topic, 'ta/out');
    assert.equal(m.properties?.topicAlias, undefined);
  }
});

test('[MQTT-3.1.2-*] Receive Maximum 0 or Maximum Packet Size 0 in CONNECT is a Protocol Error (CONNACK 0x82)', async (t) => {
  const b = await broker(t);
  for (const properties of [{ receiveMaximum: 0 }, { maximumPacketSize: 0 }]) {
    const c = await raw(t, b, 5);
    c.sendBytes(
      properties.receiveMaximum === 0
        ? Buffer.from([0x10, 0x11, 0, 4, 77, 81, 84, 84, 5, 2, 0, 60, 3, 0x21, 0, 0, 0, 1, 0x61])
        : Buffer.from([0x10, 0x13, 0, 4, 77, 81, 84, 84, 5, 2, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 1, 0x61]),
    );
    const got = await c.expectClose();
    assert.equal((got[0] as IConnackPacket).reasonCode, 0x82, JSON.stringify(properties));
  }
});

/** A challenge-response method: the server sends "challenge", the client must answer "response". */
const challenge: EnhancedAuthMethod = {
  method: 'TEST-CHALLENGE',
  start: () => {
    let step = 0;
    return {
      async step(data) {
        step++;
        if (step === 1) return { kind: 'continue', data: Buffer.from('challenge') };
        if (data?.toString() === 'response') return { kind: 'success', data: Buffer.from('welcome') };
        return { kind: 'failure', reasonCode: 0x87, reasonString: 'wrong response' };
      },
    };
  },
};

test('[MQTT-4.12.0-1] an unsupported Authentication Method gets CONNACK 0x8C and close', async (t) => {
  const b = await broker(t, {}, { enhancedAuth: [challenge] });
  const c = await raw(t, b, 5);
  const ack = await c.handshake({ properties: { authenticationMethod: 'UNKNOWN' } });
  assert.equal(ack.reasonCode, 0x8c);
  await c.expectClose();
});

test('[MQTT-4.12.0-2] [MQTT-4.12.0-5] enhanced authentication: AUTH 0x18 with the method, then CONNACK with the same method', async (t) => {
  const b = await broker(t, {}, { enhancedAuth: [challenge] });
  const c = await raw(t, b, 5);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uid(), clean: true, keepalive: 60, properties: { authenticationMethod: 'TEST-CHALLENGE' } });
  const auth = (await c.next('auth')) as IAuthPacket;
  assert.equal(auth.reasonCode, 0x18);
  assert.equal(auth.properties?.authenticationMethod, 'TEST-CHALLENGE');
  assert.equal(auth.properties?.authenticationData?.toString(), 'challenge');
  c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'TEST-CHALLENGE', authenticationData: Buffer.from('response') } });
  const ack = (await c.next('connack')) as IConnackPacket;
  assert.equal(ack.reasonCode, 0);
  assert.equal(ack.properties?.authenticationMethod, 'TEST-CHALLENGE');
  await sync(c);
});

test('[MQTT-4.12.0-4] a failed authentication exchange gets CONNACK >= 0x80 and close', async (t) => {
  const b = await broker(t, {}, { enhancedAuth: [challenge] });
  const c = await raw(t, b, 5);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uid(), clean: true, keepalive: 60, properties: { authenticationMethod: 'TEST-CHALLENGE' } });
  await c.next('auth');
  c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'TEST-CHALLENGE', authenticationData: Buffer.from('nope') } });
  const got = await c.expectClose();
  assert.ok((got[0] as IConnackPacket).reasonCode! >= 0x80);
});

test('[MQTT-4.12.0-6] [MQTT-4.12.0-7] without an Authentication Method: no method in CONNACK, and AUTH is a Protocol Error', async (t) => {
  const b = await broker(t, {}, { enhancedAuth: [challenge] });
  const { c, connack } = await connect(t, b, 5);
  assert.equal(connack.properties?.authenticationMethod, undefined);
  c.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CHALLENGE' } });
  assert.equal(((await closedWith(c)) as IDisconnectPacket).reasonCode, 0x82);
});

test('[MQTT-4.12.1-1] re-authentication with the same method succeeds (AUTH 0x18 then AUTH 0x00)', async (t) => {
  const b = await broker(t, {}, { enhancedAuth: [challenge] });
  const c = await raw(t, b, 5);
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uid(), clean: true, keepalive: 60, properties: { authenticationMethod: 'TEST-CHALLENGE' } });
  await c.next('auth');
  const data = Buffer.from('response');
  c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'TEST-CHALLENGE', authenticationData: data } });
  await c.next('connack');
  c.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'TEST-CHALLENGE' } });
  assert.equal(((await c.next('auth')) as IAuthPacket).reasonCode, 0x18);
  c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'TEST-CHALLENGE', authenticationData: data } });
  assert.equal(((await c.next('auth')) as IAuthPacket).reasonCode, 0x00);
});
