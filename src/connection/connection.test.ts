/**
 * Connection output over a real socket: the four-byte acks gathered per turn (`writeAck`) stay in
 * order with the other packets written in the same turn, across more acks than one gathering
 * buffer holds; and the client's two-byte PUBACKs, taken without a packet object, free the
 * in-flight window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { RawClient, startTestBroker } from '../testing/harness.js';

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
