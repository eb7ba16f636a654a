/**
 * Malformed input over TCP: v5 clients get DISCONNECT 0x81 (Malformed Packet) or 0x82 (Protocol
 * Error) and are closed, 3.1.1 clients are closed, and the broker keeps serving others.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IDisconnectPacket } from 'mqtt-packet';
import { broker, client, closedWith, publish, raw, receive, subscribe } from './helpers.js';

const cases: Array<[string, number[], number]> = [
  ['[MQTT-3.3.1-4] PUBLISH with QoS 3', [0x36, 0x06, 0x00, 0x01, 0x61, 0x00, 0x01, 0x00], 0x81],
  ['[MQTT-3.8.1-1] SUBSCRIBE with header flags 0000', [0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x00], 0x81],
  ['[MQTT-3.10.1-1] UNSUBSCRIBE with header flags 0000', [0xa0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61], 0x81],
  ['[MQTT-3.6.1-1] PUBREL with header flags 0000', [0x60, 0x02, 0x00, 0x01], 0x81],
  ['[MQTT-3.14.1-1] DISCONNECT with reserved bits set', [0xe2, 0x00], 0x81],
  ['[MQTT-3.15.1-1] AUTH with reserved bits set', [0xf1, 0x00], 0x81],
  ['[MQTT-3.8.3-5] SUBSCRIBE options with reserved bits set', [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0xc0], 0x81],
  ['[MQTT-1.5.5-1] Remaining Length longer than 4 bytes', [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 0x81],
  ['[MQTT-2.2.2-*] unknown property identifier', [0x30, 0x06, 0x00, 0x01, 0x61, 0x02, 0x7f, 0x00], 0x81],
  ['[MQTT-1.5.4-1] ill-formed UTF-8 in a topic name', [0x30, 0x06, 0x00, 0x02, 0xc3, 0x28, 0x00, 0x61], 0x81],
  ['[MQTT-1.5.4-2] U+0000 in a topic filter', [0x82, 0x08, 0x00, 0x01, 0x00, 0x00, 0x02, 0x61, 0x00, 0x00], 0x81],
  ['[MQTT-3.8.3-2] SUBSCRIBE without a topic filter', [0x82, 0x03, 0x00, 0x01, 0x00], 0x82],
  ['[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter', [0xa2, 0x03, 0x00, 0x01, 0x00], 0x82],
  ['[MQTT-2.2.1-3] QoS 1 PUBLISH with packet id 0', [0x32, 0x06, 0x00, 0x01, 0x61, 0x00, 0x00, 0x00], 0x82],
  ['[MQTT-2.2.2-*] a property included twice (Message Expiry Interval)', [0x30, 0x0f, 0x00, 0x01, 0x61, 0x0a, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2, 0x61], 0x82],
  ['[MQTT-3.1.0-2] CONNACK sent by a client', [0x20, 0x03, 0x00, 0x00, 0x00], 0x82],
];

for (const [name, bytes, code] of cases) {
  test(`${name}: v5 DISCONNECT 0x${code.toString(16)} and close`, async (t) => {
    const b = await broker(t);
    const c = await client(t, b, 5);
    c.sendBytes(bytes);
    const d = (await closedWith(c)) as IDisconnectPacket | undefined;
    assert.equal(d?.reasonCode, code);
  });
}

test('[MQTT-4.8.0-1] 3.1.1: malformed input closes the connection without a DISCONNECT', async (t) => {
  const b = await broker(t);
  for (const bytes of [
    [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01],
    [0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
    [0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x61],
  ]) {
    const c = await client(t, b, 4);
    c.sendBytes(bytes);
    const rest = await c.expectClose();
    assert.ok(!rest.some((p) => p.cmd === 'disconnect'), '3.1.1 has no server DISCONNECT');
  }
});

test('[MQTT-4.13.1-1] random garbage never crashes the broker; well-behaved clients keep working', async (t) => {
  const b = await broker(t);
  const s = await client(t, b, 5);
  await subscribe(s, 'alive', 1);
  for (let i = 0; i < 60; i++) {
    const version = ([3, 4, 5] as const)[i % 3];
    const c = await raw(t, b, version);
    if (i % 2 === 0) await c.handshake();
    // Valid fixed-header type with a random body, or pure noise.
    const junk = randomBytes(1 + (i % 40));
    if (i % 4 === 0) junk[0] = (junk[0]! & 0x0f) | (((i % 14) + 1) << 4);
    c.sendBytes(junk);
    c.end();
  }
  const p = await client(t, b, 5);
  await publish(p, 'alive', 'still', 1);
  assert.equal((await receive(s)).payload.toString(), 'still');
});

test('[MQTT-3.1.4-1] a truncated CONNECT followed by close leaves no session behind', async (t) => {
  const b = await broker(t);
  const c = await raw(t, b, 5);
  c.sendBytes([0x10, 0x20, 0x00, 0x04, 0x4d, 0x51]);
  c.end();
  await c.closedPromise;
  assert.equal(b.node.broker.targets.size, 0);
});
