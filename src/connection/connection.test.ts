/**
 * Connection output over a real socket: the four-byte acks gathered per turn (`writeAck`) stay in
 * order with the other packets written in the same turn, across more acks than one gathering
 * buffer holds; and the client's two-byte PUBACKs, taken without a packet object, free the
 * in-flight window. And when output is written: at the end of each read while the loop is quiet,
 * once per turn while it is busy (`outputTiming`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { RawClient, startTestBroker } from '../testing/harness.js';
import { outputTiming } from './connection.js';

for (const version of [4, 5] as const) {
  test(`v${version}: 300 QoS 1 PUBLISH in one write to a topic the client subscribes to: PUBACKs in order [MQTT-4.6.0-2], deliveries in order [MQTT-4.6.0-6], interleaved in one stream`, async (t) => {
    // An in-flight window of 10: the 300 deliveries only get through if the client's PUBACKs
    // (two-byte ones, taken straight from the decoder: DecoderHandlers.ack) free it.
    const b = await startTestBroker({ limits: { maxInflight: 10 } });
    t.after(() => b.stop());
    const c = await RawClient.connect(b.port, version);
    t.after(() => c.destroy());
    await c.handshake({ clientId: `acks-${version}` });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'acks/t', qos: 1 }] } as mqttPacket.ISubscribePacket);
    await c.next('suback');
    const N = 300;
    const frames: Buffer[] = [];
    for (let i = 1; i <= N; i++) {
      frames.push(mqttPacket.generate({ cmd: 'publish', topic: 'acks/t', payload: Buffer.from(String(i)), qos: 1, messageId: i, retain: false, dup: false } as mqttPacket.IPublishPacket, { protocolVersion: version }));
    }
    c.sendBytes(Buffer.concat(frames));
    const acked: number[] = [];
    const delivered: string[] = [];
    while (acked.length < N || delivered.length < N) {
      const p = await c.next(undefined, 5000);
      if (p.cmd === 'puback') {
        acked.push(p.messageId!);
        if (version === 5) assert.equal((p as mqttPacket.IPubackPacket).reasonCode ?? 0, 0);
      } else if (p.cmd === 'publish') {
        delivered.push(p.payload.toString());
        // Our PUBACK for the delivery goes out through the same gathering path on the server's
        // side of the next read; the server's own acks above must not be disturbed by it.
        // Two-byte PUBACK (5.0: the short form for Success, §3.4.2.1), as most clients send it.
        c.sendBytes([0x40, 0x02, p.messageId! >> 8, p.messageId! & 0xff]);
      } else assert.fail(`unexpected ${p.cmd}`);
    }
    assert.deepEqual(acked, Array.from({ length: N }, (_, i) => i + 1));
    assert.deepEqual(delivered, Array.from({ length: N }, (_, i) => String(i + 1)));
    assert.ok(await c.nothingWithin(100), 'nothing more (no duplicate ack or delivery)');
    assert.equal(b.node.broker.sessions.get(`acks-${version}`)?.inflightCount, 0, 'every delivery acknowledged');
  });
}

test('output timing: a quiet loop writes each read\'s output when the read is handled; a turn of many reads switches to one write per connection per turn, and quiet turns switch back', async (t) => {
  const b = await startTestBroker();
  t.after(() => b.stop());
  const sub = await RawClient.connect(b.port, 4);
  t.after(() => sub.destroy());
  await sub.handshake({ clientId: 'timing-sub' });
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'timing/+', qos: 0 }] } as mqttPacket.ISubscribePacket);
  await sub.next('suback');
  const pubs: RawClient[] = [];
  for (let i = 0; i < 8; i++) {
    const c = await RawClient.connect(b.port, 4);
    t.after(() => c.destroy());
    await c.handshake({ clientId: `timing-pub-${i}` });
    pubs.push(c);
  }
  const frame = (i: number, n: number): Buffer =>
    mqttPacket.generate({ cmd: 'publish', topic: `timing/${i}`, payload: Buffer.from(String(n)), qos: 0, messageId: 0, retain: false, dup: false } as mqttPacket.IPublishPacket);
  const expectDeliveries = async (count: number): Promise<string[]> => {
    const got: string[] = [];
    while (got.length < count) {
      const p = (await sub.next('publish', 5000)) as mqttPacket.IPublishPacket;
      got.push(`${p.topic}=${p.payload.toString()}`);
    }
    return got;
  };

  // One read per turn: one publisher at a time, each delivery awaited.
  let n = 0;
  for (let i = 0; i < 20; i++) {
    pubs[0]!.sendBytes(frame(0, ++n));
    assert.deepEqual(await expectDeliveries(1), [`timing/0=${n}`]);
  }
  assert.equal(outputTiming().flushAfterRead, true, 'quiet: output written at the end of each read');

  // Eight publishers write in the same tick: the broker reads eight sockets in one poll phase.
  // A probed turn (every 16th read) counts them and output is then gathered per turn.
  let rounds = 0;
  while (outputTiming().flushAfterRead && rounds < 40) {
    rounds++;
    const sent = pubs.map((p, i) => {
      const v = ++n;
      p.sendBytes(frame(i, v));
      return `timing/${i}=${v}`;
    });
    const got = await expectDeliveries(sent.length);
    assert.deepEqual([...got].sort(), [...sent].sort(), 'every message of the round delivered once');
  }
  assert.equal(outputTiming().flushAfterRead, false, `busy turns switch to one write per turn (after ${rounds} rounds)`);
  // Still correct while batched: a publisher's messages arrive in order [MQTT-4.6.0-6].
  for (let i = 0; i < 5; i++) pubs[3]!.sendBytes(frame(3, ++n));
  assert.deepEqual(await expectDeliveries(5), [n - 4, n - 3, n - 2, n - 1, n].map((v) => `timing/3=${v}`));

  // Quiet again: single reads, one per turn, bring back the write at the end of the read.
  let quiet = 0;
  while (!outputTiming().flushAfterRead && quiet < 60) {
    quiet++;
    pubs[1]!.sendBytes(frame(1, ++n));
    assert.deepEqual(await expectDeliveries(1), [`timing/1=${n}`]);
  }
  assert.equal(outputTiming().flushAfterRead, true, `quiet turns switch back (after ${quiet} single reads)`);
  assert.ok(await sub.nothingWithin(50), 'no duplicate delivery');
  assert.equal(outputTiming().turnEndArmed, false, 'nothing left waiting for a turn end');
});
