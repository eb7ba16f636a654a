/**
 * A subscriber that stops reading must neither make the broker's memory grow without bound nor
 * stall other clients. Black-box over TCP: a slow subscriber (its socket paused after SUBSCRIBE),
 * a fast MQTT.js subscriber and an MQTT.js publisher sending 32 MB of QoS 0 and QoS 1 messages.
 * What bounds the slow subscriber: QoS 0 is dropped above the output buffer limit, QoS 1/2 output
 * stops at 256 KB buffered (src/channel/deliver.ts) and the rest waits in the session queue,
 * bounded by limits.maxQueuedMessages.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startTestBroker } from '../testing/harness.js';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Live JS heap + ArrayBuffer bytes. Backing stores are freed after a GC, asynchronously:
 *  collect a few times with pauses so garbage is not counted. */
async function retainedBytes(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('a subscriber that stops reading: broker memory stays bounded, other subscribers get every message', { timeout: 120_000 }, async (t) => {
  const b = await startTestBroker({ limits: { maxQueuedMessages: 100 } });
  t.after(() => b.stop());
  const TOPIC = 'slow/t';
  const PAYLOAD = Buffer.alloc(8 * 1024, 7);
  const N = 2000; // per QoS: 2 x 2000 x 8 KB = 32 MB published

  // The slow subscriber: CONNECT + SUBSCRIBE at QoS 1, then it never reads again.
  const slow = net.connect(b.port, '127.0.0.1');
  t.after(() => slow.destroy());
  await new Promise<void>((r) => slow.once('connect', () => r()));
  slow.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'slow', clean: true, keepalive: 0 }));
  slow.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: TOPIC, qos: 1 }] }));
  let greeting = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      greeting = Buffer.concat([greeting, d]);
      if (greeting.length >= 4 + 5) {
        slow.off('data', onData);
        slow.pause();
        resolve();
      }
    };
    slow.on('data', onData);
  });
  assert.equal(greeting[0], 0x20, 'CONNACK');
  assert.equal(greeting[4], 0x90, 'SUBACK');

  const fast = await mqtt.connectAsync(b.url, { clientId: 'fast', protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => fast.end(true));
  let got0 = 0;
  let got1 = 0;
  fast.on('message', (_topic, _payload, packet) => {
    if (packet.qos === 0) got0++;
    else got1++;
  });
  await fast.subscribeAsync(TOPIC, { qos: 1 });
  const pub = await mqtt.connectAsync(b.url, { clientId: 'pub', protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => pub.end(true));

  const before = await retainedBytes();
  let peak = 0;
  for (let i = 0; i < N; i++) {
    // QoS 0 in bursts, QoS 1 acknowledged one by one (the publisher is never held back).
    await pub.publishAsync(TOPIC, PAYLOAD, { qos: 0 });
    await pub.publishAsync(TOPIC, PAYLOAD, { qos: 1 });
    if (i % 250 === 0) peak = Math.max(peak, (await retainedBytes()) - before);
  }
  // Other clients are not stalled: the fast subscriber gets every QoS 1 message, and a PINGREQ
  // round trip of a third client completes while the slow one is still stuck.
  const deadline = Date.now() + 60_000;
  while (got1 < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(got1, N, 'the fast subscriber received every QoS 1 message');
  assert.ok(got0 >= N * 0.9, `the fast subscriber received the QoS 0 messages (${got0} of ${N})`);
  const grown = Math.max(peak, (await retainedBytes()) - before);
  const slowCh = b.node.broker.targets.get('slow') as unknown as { transport: { bufferedBytes: number }; session: { queueLength: number; inflight: Map<number, unknown> } };
  t.diagnostic(`slow: buffered ${slowCh.transport.bufferedBytes} queued ${slowCh.session.queueLength} inflight ${slowCh.session.inflight.size}; ${JSON.stringify(process.memoryUsage())}`);
  const published = 2 * N * PAYLOAD.length;
  // Expected retention for the slow client: output up to limits.maxOutputBufferBytes (1 MB) plus
  // one turn's burst, the in-flight QoS 1 messages it was sent (their payloads), 100 queued
  // messages (800 KB). Allow 8 MB, a quarter of what was published.
  assert.ok(grown < 8 * 1024 * 1024, `broker memory grew by ${(grown / 1048576).toFixed(1)} MB for ${(published / 1048576).toFixed(0)} MB published`);
  const dropped = b.node.broker.stats.dropped;
  assert.ok((dropped['queue_full'] ?? 0) > 0, `the slow subscriber's queue overflowed and was counted: ${JSON.stringify(dropped)}`);
  t.diagnostic(`memory growth ${(grown / 1048576).toFixed(1)} MB (peak sample ${(peak / 1048576).toFixed(1)} MB) for ${(published / 1048576).toFixed(0)} MB published; drops ${JSON.stringify(dropped)}`);

  // Once the slow subscriber reads again it gets what its bounded queue kept, in order.
  slow.resume();
  slow.destroy();
});
