/**
 * Interop with the unmodified Debian python3-paho-mqtt (1.6.x API, only under /usr/bin/python3),
 * MQTT 3.1.1 and 5.0 (plus a 3.1 smoke test), against an in-process broker on a random port.
 *
 * The driver script `src/interop/paho/client.py` (not compiled; run from the source tree) takes a
 * JSON spec and prints one JSON event per line: connected, subscribed, published, message, holding,
 * done. Every run is bounded by the script's own timeout and by a hard kill.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startTestBroker, type TestBroker } from '../testing/harness.js';
import { JsClient, endAllJs, killAll, shortId, sleep, startProc, uid, type Proc } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../src/interop/paho/client.py', import.meta.url));

interface PahoEvent {
  event: string;
  topic?: string;
  payload?: string;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  granted?: number[];
  sessionPresent?: boolean;
  rc?: number;
}

function events(p: Proc): PahoEvent[] {
  return p.lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as PahoEvent];
    } catch {
      return [];
    }
  });
}

const messagesOf = (p: Proc) =>
  events(p)
    .filter((e) => e.event === 'message')
    .map((e) => ({ topic: e.topic, payload: e.payload, qos: e.qos, retain: e.retain }));

for (const V of [3, 4, 5] as const) {
  const name = { 3: '3.1', 4: '3.1.1', 5: '5.0' }[V];
  describe(`paho-mqtt (python), MQTT ${name}`, () => {
    let broker: TestBroker;
    let js: JsClient;
    before(async () => {
      broker = await startTestBroker();
      js = await JsClient.connect(broker.url, { protocolVersion: 5, clientId: uid('js-helper') });
    });
    after(async () => {
      await killAll();
      await endAllJs();
      await broker.stop();
    });

    /** Starts the paho driver with `spec` (the client id is unique unless given). */
    function paho(spec: Record<string, unknown>, timeoutSec = 10): Proc {
      const full = { host: '127.0.0.1', port: broker.port, version: V, clientId: shortId('paho'), timeout: timeoutSec, ...spec };
      return startProc(PYTHON, ['-u', SCRIPT, JSON.stringify(full)], { maxLifetimeMs: (timeoutSec + 5) * 1000 });
    }

    const waitEvent = (p: Proc, event: string, ms = 8_000) =>
      p.waitFor(() => events(p).find((e) => e.event === event), ms, `paho event "${event}"`);

    async function finished(p: Proc): Promise<PahoEvent[]> {
      const exit = await p.waitExit(15_000);
      assert.equal(exit.code, 0, `paho driver failed\n${p.describe()}`);
      return events(p);
    }

    const qosList = V === 3 ? ([2] as const) : ([0, 1, 2] as const);
    for (const qos of qosList) {
      it(`QoS ${qos}: paho -> paho (one client publishing to its own subscription)`, async (t) => {
        t.after(killAll);
        const topic = uid('paho/self');
        const self = paho({ subscribe: [[topic, qos]], publish: [{ topic, payload: 'loop', qos }], expect: 1 });
        const selfEvents = await finished(self);
        assert.deepEqual(selfEvents.find((e) => e.event === 'subscribed')?.granted, [qos]);
        assert.deepEqual(messagesOf(self), [{ topic, payload: 'loop', qos, retain: false }]);
      });

      it(`QoS ${qos}: paho publisher -> MQTT.js subscriber`, async (t) => {
        t.after(killAll);
        const topic = uid('paho/to-js');
        await js.subscribe(topic, 2);
        await finished(paho({ publish: [{ topic, payload: `from-paho-${qos}`, qos }] }));
        const m = await js.waitMessage(topic);
        assert.equal(m.payload, `from-paho-${qos}`);
        assert.equal(m.qos, qos);
        assert.equal(m.retain, false);
      });

      it(`QoS ${qos}: MQTT.js publisher -> paho subscriber`, async (t) => {
        t.after(killAll);
        const topic = uid('paho/to-paho');
        const sub = paho({ subscribe: [[topic, 2]], expect: 1 });
        await waitEvent(sub, 'subscribed');
        await js.publish(topic, `from-js-${qos}`, qos);
        await finished(sub);
        assert.deepEqual(messagesOf(sub), [{ topic, payload: `from-js-${qos}`, qos, retain: false }]);
      });
    }

    it('retained message: set, received later with the retain flag, deleted by an empty payload', async (t) => {
      t.after(killAll);
      const topic = uid('paho/retained');
      await finished(paho({ publish: [{ topic, payload: 'kept', qos: 1, retain: true }] }));
      const later = paho({ subscribe: [[topic, 1]], expect: 1 });
      await finished(later);
      assert.deepEqual(messagesOf(later), [{ topic, payload: 'kept', qos: 1, retain: true }]);
      // Delete with an empty retained payload.
      await finished(paho({ publish: [{ topic, payload: '', qos: 1, retain: true }] }));
      const after = paho({ subscribe: [[topic, 1], [`${topic}-sentinel`, 1]], expect: 1 });
      await waitEvent(after, 'subscribed');
      await js.publish(`${topic}-sentinel`, 'sentinel', 1);
      await finished(after);
      assert.deepEqual(messagesOf(after), [{ topic: `${topic}-sentinel`, payload: 'sentinel', qos: 1, retain: false }]);
    });

    it('will message when the paho process is killed (SIGKILL), none after a clean disconnect', async (t) => {
      t.after(killAll);
      const willTopic = uid('paho/will');
      await js.subscribe(`${willTopic}/#`, 2);
      const victim = paho({ will: { topic: `${willTopic}/killed`, payload: 'gone', qos: 1, retain: false }, hold: true }, 20);
      await waitEvent(victim, 'holding');
      victim.kill('SIGKILL');
      await victim.waitExit(5_000);
      const w = await js.waitMessage(`${willTopic}/killed`);
      assert.equal(w.payload, 'gone');
      assert.equal(w.qos, 1);

      await finished(paho({ will: { topic: `${willTopic}/clean`, payload: 'no', qos: 1, retain: false } }));
      await js.publish(`${willTopic}/sentinel`, 's', 1);
      await js.waitMessage(`${willTopic}/sentinel`);
      await sleep(300);
      assert.deepEqual(js.messages.filter((m) => m.topic === `${willTopic}/clean`), []);
    });

    it('persistent session: queued QoS 1/2 messages delivered exactly once on resume', async (t) => {
      t.after(killAll);
      const clientId = shortId('ps');
      const topic = uid('paho/session');
      const persistent = V === 5 ? { clientId, clean: false, sessionExpiry: 300 } : { clientId, clean: false };
      const first = paho({ ...persistent, subscribe: [[`${topic}/#`, 2]] });
      const firstEvents = await finished(first);
      assert.equal(firstEvents.find((e) => e.event === 'connected')?.sessionPresent, false);

      const queued = [
        { topic: `${topic}/a`, payload: 'q1-first', qos: 1 },
        { topic: `${topic}/a`, payload: 'q1-second', qos: 1 },
        { topic: `${topic}/b`, payload: 'q2-first', qos: 2 },
        { topic: `${topic}/b`, payload: 'q2-second', qos: 2 },
      ];
      for (const m of queued) await js.publish(m.topic, m.payload, m.qos as 1 | 2);

      const resumed = paho({ ...persistent, expect: queued.length + 1 });
      await resumed.waitFor(() => messagesOf(resumed).length >= queued.length, 8_000, 'the queued messages');
      await js.publish(`${topic}/sentinel`, 'sentinel', 1);
      const ev = await finished(resumed);
      assert.equal(ev.find((e) => e.event === 'connected')?.sessionPresent, true);
      const got = messagesOf(resumed);
      assert.equal(got.length, queued.length + 1, JSON.stringify(got));
      assert.deepEqual(got.at(-1), { topic: `${topic}/sentinel`, payload: 'sentinel', qos: 1, retain: false });
      const key = (m: { topic?: string; payload?: string; qos?: number }) => `${m.topic} ${m.payload} q${m.qos}`;
      assert.deepEqual(got.slice(0, -1).map(key).sort(), queued.map(key).sort());
      assert.deepEqual(
        got.filter((m) => m.topic === `${topic}/a`).map((m) => m.payload),
        ['q1-first', 'q1-second'],
      );

      // Resume again: nothing is redelivered, the first message is a new sentinel.
      const again = paho({ ...persistent, expect: 1 });
      await waitEvent(again, 'connected');
      await js.publish(`${topic}/sentinel`, 'sentinel-2', 1);
      await finished(again);
      assert.deepEqual(messagesOf(again), [{ topic: `${topic}/sentinel`, payload: 'sentinel-2', qos: 1, retain: false }]);
    });
  });
}
