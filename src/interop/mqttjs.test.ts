/**
 * Interop with unmodified MQTT.js 5 clients (protocolVersion 4 = MQTT 3.1.1 and 5 = MQTT 5.0,
 * plus a 3.1 smoke test) against an in-process broker on a random loopback port.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../testing/harness.js';
import { JsClient, endAllJs, shortId, sleep, uid } from './helpers.js';

describe('MQTT.js, MQTT 3.1 smoke test', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker();
  });
  after(async () => {
    await endAllJs();
    await broker.stop();
  });

  it('connects with protocolVersion 3 and exchanges QoS 0/1/2 messages', async () => {
    const a = await JsClient.connect(broker.url, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: shortId('v31a') });
    const b = await JsClient.connect(broker.url, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: shortId('v31b') });
    const topic = uid('js31');
    assert.deepEqual(await b.subscribe(`${topic}/#`, 2), [2]);
    for (const qos of [0, 1, 2] as const) await a.publish(`${topic}/${qos}`, `m${qos}`, qos);
    await b.waitFor(() => b.messages.length === 3, 5_000, 'three messages');
    assert.deepEqual(
      b.messages.map((m) => [m.topic, m.payload, m.qos]).sort(),
      [0, 1, 2].map((q) => [`${topic}/${q}`, `m${q}`, q]),
    );
    await a.end();
    await b.end();
  });
});

for (const V of [4, 5] as const) {
  describe(`MQTT.js, protocolVersion ${V}`, () => {
    let broker: TestBroker;
    before(async () => {
      broker = await startTestBroker();
    });
    after(async () => {
      await endAllJs();
      await broker.stop();
    });

    const connect = (opts: Parameters<typeof JsClient.connect>[1] = {}) =>
      JsClient.connect(broker.url, { protocolVersion: V, clientId: uid('js'), ...opts });

    for (const qos of [0, 1, 2] as const) {
      it(`QoS ${qos} publish and subscribe, both ways`, async (t) => {
        const a = await connect();
        const b = await connect();
        t.after(() => Promise.all([a.end(), b.end()]));
        const topic = uid('js/qos');
        assert.deepEqual(await a.subscribe(`${topic}/to-a`, qos), [qos]);
        assert.deepEqual(await b.subscribe(`${topic}/to-b`, qos), [qos]);
        for (let i = 0; i < 5; i++) {
          await a.publish(`${topic}/to-b`, `a${i}`, qos);
          await b.publish(`${topic}/to-a`, `b${i}`, qos);
        }
        await a.waitFor(() => a.messages.length >= 5, 5_000, '5 messages at a');
        await b.waitFor(() => b.messages.length >= 5, 5_000, '5 messages at b');
        await sleep(200); // any duplicate would be right behind
        // In order, exactly once (QoS 0 over loopback TCP to a live subscriber is not dropped).
        assert.deepEqual(
          a.messages.map((m) => [m.topic, m.payload, m.qos, m.retain, m.dup]),
          [0, 1, 2, 3, 4].map((i) => [`${topic}/to-a`, `b${i}`, qos, false, false]),
        );
        assert.deepEqual(
          b.messages.map((m) => [m.topic, m.payload, m.qos, m.retain, m.dup]),
          [0, 1, 2, 3, 4].map((i) => [`${topic}/to-b`, `a${i}`, qos, false, false]),
        );
      });
    }

    it('delivery QoS is the minimum of publish and granted QoS', async (t) => {
      const a = await connect();
      t.after(() => a.end());
      const topic = uid('js/min');
      await a.subscribe(`${topic}/sub1`, 1);
      await a.subscribe(`${topic}/sub0`, 0);
      await a.publish(`${topic}/sub1`, 'x', 2);
      await a.publish(`${topic}/sub0`, 'y', 2);
      await a.waitFor(() => a.messages.length === 2, 5_000, 'two messages');
      assert.deepEqual(
        a.messages.map((m) => [m.topic, m.qos]).sort(),
        [
          [`${topic}/sub0`, 0],
          [`${topic}/sub1`, 1],
        ],
      );
    });

    it('retained message: set, received later with the retain flag, deleted by an empty payload', async (t) => {
      const pub = await connect();
      t.after(() => pub.end());
      const topic = uid('js/retained');
      const live = await connect();
      t.after(() => live.end());
      await live.subscribe(topic, 1);
      await pub.publish(topic, 'kept', 1, true);
      const l = await live.waitMessage(topic);
      assert.equal(l.retain, false, 'a retained publish forwarded to an existing subscription has retain 0');
      for (const qos of [0, 1, 2] as const) {
        const later = await connect();
        const granted = await later.subscribe(topic, qos);
        assert.deepEqual(granted, [qos]);
        const m = await later.waitMessage(topic);
        assert.equal(m.payload, 'kept');
        assert.equal(m.retain, true);
        assert.equal(m.qos, Math.min(qos, 1));
        await later.end();
      }
      await pub.publish(topic, '', 1, true);
      const after = await connect();
      t.after(() => after.end());
      await after.subscribe([topic, `${topic}-sentinel`], 1);
      await pub.publish(`${topic}-sentinel`, 'sentinel', 1);
      await after.waitMessage(`${topic}-sentinel`);
      assert.deepEqual(
        after.messages.map((m) => m.topic),
        [`${topic}-sentinel`],
        'the deleted retained message must not be delivered',
      );
    });

    it('will message on abnormal disconnect (socket destroyed), none after a clean DISCONNECT', async (t) => {
      const watcher = await connect();
      t.after(() => watcher.end());
      const willTopic = uid('js/will');
      await watcher.subscribe(`${willTopic}/#`, 2);
      const victim = await connect({ will: { topic: `${willTopic}/abnormal`, payload: Buffer.from('gone'), qos: 2, retain: false } });
      victim.client.stream.destroy();
      const w = await watcher.waitMessage(`${willTopic}/abnormal`);
      assert.equal(w.payload, 'gone');
      assert.equal(w.qos, 2);
      assert.equal(w.retain, false);
      victim.client.end(true);

      const polite = await connect({ will: { topic: `${willTopic}/clean`, payload: Buffer.from('no'), qos: 1, retain: false } });
      await polite.end();
      await watcher.client.publishAsync(`${willTopic}/sentinel`, 'sentinel', { qos: 1 });
      await watcher.waitMessage(`${willTopic}/sentinel`);
      await sleep(300);
      assert.deepEqual(
        watcher.messages.filter((m) => m.topic === `${willTopic}/clean`),
        [],
        'a normal DISCONNECT discards the will',
      );
    });

    it('retained will: a later subscriber gets it with the retain flag', async () => {
      const willTopic = uid('js/will-retained');
      const victim = await connect({ will: { topic: willTopic, payload: Buffer.from('last words'), qos: 1, retain: true } });
      victim.client.stream.destroy();
      victim.client.end(true);
      // Poll with fresh subscribers until the will has been stored (bounded).
      let got: { payload: string; retain: boolean } | undefined;
      const deadline = Date.now() + 5_000;
      while (!got && Date.now() < deadline) {
        const s = await connect();
        await s.subscribe([willTopic, `${willTopic}-sentinel`], 1);
        await s.publish(`${willTopic}-sentinel`, 's', 1);
        await s.waitMessage(`${willTopic}-sentinel`);
        got = s.messages.find((m) => m.topic === willTopic);
        await s.end();
        if (!got) await sleep(100);
      }
      assert.ok(got, 'the retained will was stored');
      assert.equal(got.payload, 'last words');
      assert.equal(got.retain, true);
    });

    it('persistent session: queued QoS 1/2 messages delivered exactly once on resume', async (t) => {
      const clientId = uid('jssess');
      const topic = uid('js/session');
      const persistent =
        V === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      const pub = await connect();
      t.after(() => pub.end());

      const first = await connect({ clientId, ...persistent });
      assert.equal(first.connack?.sessionPresent, false, 'no session yet');
      assert.deepEqual(await first.subscribe(`${topic}/q1`, 1), [1]);
      assert.deepEqual(await first.subscribe(`${topic}/q2`, 2), [2]);
      await first.end();

      const expected: Array<[string, string, number]> = [];
      for (let i = 0; i < 10; i++) {
        await pub.publish(`${topic}/q1`, `one-${i}`, 1);
        expected.push([`${topic}/q1`, `one-${i}`, 1]);
        await pub.publish(`${topic}/q2`, `two-${i}`, 2);
        expected.push([`${topic}/q2`, `two-${i}`, 2]);
      }

      const resumed = await connect({ clientId, ...persistent });
      t.after(() => resumed.end());
      assert.equal(resumed.connack?.sessionPresent, true, 'the session was kept');
      await resumed.waitFor(() => resumed.messages.length >= expected.length, 8_000, 'the queued messages');
      // Sentinels on both topics: anything queued (or duplicated) would come before them.
      await pub.publish(`${topic}/q1`, 'end', 1);
      await pub.publish(`${topic}/q2`, 'end', 2);
      await resumed.waitFor(() => resumed.messages.filter((m) => m.payload === 'end').length === 2, 5_000, 'sentinels');
      const got = resumed.messages.filter((m) => m.payload !== 'end');
      // Exactly once each; in order per topic (MQTT orders per topic and QoS, not across topics).
      for (const sub of ['q1', 'q2']) {
        assert.deepEqual(
          got.filter((m) => m.topic === `${topic}/${sub}`).map((m) => [m.topic, m.payload, m.qos]),
          expected.filter(([tp]) => tp === `${topic}/${sub}`),
          `every queued message on ${sub} exactly once, in order`,
        );
      }
      assert.equal(got.length, expected.length);
      assert.ok(got.every((m) => !m.retain));
      await resumed.end();

      // Resuming again redelivers nothing (all were acknowledged).
      const third = await connect({ clientId, ...persistent });
      t.after(() => third.end());
      assert.equal(third.connack?.sessionPresent, true);
      await pub.publish(`${topic}/q1`, 'end-2', 1);
      await third.waitMessage(`${topic}/q1`, 5_000, 'end-2');
      assert.deepEqual(third.messages.map((m) => m.payload), ['end-2']);
      await third.end();

      // A clean session discards it.
      const clean = await connect({ clientId, clean: true });
      assert.equal(clean.connack?.sessionPresent, false);
      await clean.end();
    });

    if (V === 5) {
      it('MQTT 5 publish properties are forwarded', async (t) => {
        const a = await connect();
        t.after(() => a.end());
        const topic = uid('js/props');
        await a.subscribe(topic, 1);
        await a.publish(topic, 'with props', 1, false, {
          payloadFormatIndicator: true,
          contentType: 'text/plain',
          responseTopic: `${topic}/reply`,
          correlationData: Buffer.from('corr-1'),
          userProperties: { k: 'v', other: 'x' },
          messageExpiryInterval: 3600,
        });
        const m = await a.waitMessage(topic);
        const p = m.properties ?? {};
        assert.equal(p.payloadFormatIndicator, true);
        assert.equal(p.contentType, 'text/plain');
        assert.equal(p.responseTopic, `${topic}/reply`);
        assert.equal(Buffer.from(p.correlationData ?? []).toString(), 'corr-1');
        assert.deepEqual({ ...p.userProperties }, { k: 'v', other: 'x' });
        assert.ok(typeof p.messageExpiryInterval === 'number' && p.messageExpiryInterval <= 3600 && p.messageExpiryInterval > 0);
      });

      it('will delay: the will waits for the delay, and a reconnect within it cancels the will', async (t) => {
        const watcher = await connect();
        t.after(() => watcher.end());
        const willTopic = uid('js/will-delay');
        await watcher.subscribe(`${willTopic}/#`, 1);
        // Delay 1 s, session expiry 60 s: the will goes out after about 1 s.
        const v1 = await connect({
          properties: { sessionExpiryInterval: 60 },
          will: { topic: `${willTopic}/delayed`, payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
        });
        v1.client.stream.destroy();
        v1.client.end(true);
        const w = await watcher.waitMessage(`${willTopic}/delayed`, 8_000);
        assert.equal(w.payload, 'late');

        // Delay 30 s: reconnecting the same client id before then cancels it.
        const clientId = uid('jswd');
        const opts = {
          clientId,
          clean: false,
          properties: { sessionExpiryInterval: 60 },
          will: { topic: `${willTopic}/cancelled`, payload: Buffer.from('never'), qos: 1 as const, retain: false, properties: { willDelayInterval: 30 } },
        };
        const v2 = await connect(opts);
        v2.client.stream.destroy();
        v2.client.end(true);
        await sleep(200);
        const back = await connect({ clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
        assert.equal(back.connack?.sessionPresent, true);
        await back.end();
        await watcher.publish(`${willTopic}/sentinel`, 's', 1);
        await watcher.waitMessage(`${willTopic}/sentinel`);
        await sleep(300);
        assert.deepEqual(watcher.messages.filter((m) => m.topic === `${willTopic}/cancelled`), []);
      });
    }
  });
}
