/**
 * Interop with Debian's unmodified mosquitto-clients (mosquitto_pub / mosquitto_sub), MQTT 3.1.1
 * and 5.0, against an in-process broker on a random loopback port.
 *
 * mosquitto_sub runs with `-d` (so we can see its SUBACK) and `-F 'MSG|%t|%q|%r|%p'` (topic, QoS,
 * retain flag, payload), always bounded by `-C n -W seconds` and by a hard kill.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../testing/harness.js';
import { JsClient, killAll, endAllJs, runProc, startProc, sleep, uid, type Proc } from './helpers.js';

interface SubMsg {
  topic: string;
  qos: number;
  retain: number;
  payload: string;
}

function messagesOf(p: Proc): SubMsg[] {
  return p.lines
    .filter((l) => l.startsWith('MSG|'))
    .map((l) => {
      const [, topic, qos, retain, ...rest] = l.split('|');
      return { topic: topic!, qos: Number(qos), retain: Number(retain), payload: rest.join('|') };
    });
}

for (const V of ['311', '5'] as const) {
  describe(`mosquitto-clients, MQTT ${V === '5' ? '5.0' : '3.1.1'}`, () => {
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

    const base = () => ['-h', '127.0.0.1', '-p', String(broker.port), '-V', V === '5' ? 'mqttv5' : 'mqttv311'];

    /** Starts mosquitto_sub (bounded by -W) and waits for its SUBACK. */
    async function sub(args: string[], waitSeconds = 10): Promise<Proc> {
      // stdbuf -oL: mosquitto_sub's stdout is a pipe, so without it the debug lines (SUBACK)
      // would sit in the stdio buffer until exit.
      const p = startProc('stdbuf', ['-oL', 'mosquitto_sub', ...base(), '-d', '-F', 'MSG|%t|%q|%r|%p', '-W', String(waitSeconds), ...args], {
        maxLifetimeMs: (waitSeconds + 5) * 1000,
      });
      await p.waitForLine(/received SUBACK/, 8_000);
      return p;
    }

    async function pub(args: string[]): Promise<void> {
      const p = await runProc('mosquitto_pub', [...base(), ...args], 10_000);
      assert.equal(p.exit?.code, 0, `mosquitto_pub failed\n${p.describe()}`);
    }

    async function subExit(p: Proc): Promise<SubMsg[]> {
      const exit = await p.waitExit(12_000);
      assert.equal(exit.code, 0, `mosquitto_sub did not exit cleanly\n${p.describe()}`);
      return messagesOf(p);
    }

    for (const qos of [0, 1, 2] as const) {
      it(`mosquitto_pub -> mosquitto_sub at QoS ${qos}`, async (t) => {
        t.after(killAll);
        const topic = uid('mq/pubsub');
        const s = await sub(['-t', topic, '-q', String(qos), '-C', '1']);
        await pub(['-t', topic, '-q', String(qos), '-m', `hello-${qos}`]);
        const msgs = await subExit(s);
        assert.deepEqual(msgs, [{ topic, qos, retain: 0, payload: `hello-${qos}` }]);
      });

      it(`mosquitto_pub -> MQTT.js and MQTT.js -> mosquitto_sub at QoS ${qos}`, async (t) => {
        t.after(killAll);
        const topic = uid('mq/cross');
        // mosquitto_pub -> MQTT.js subscriber
        await js.subscribe(`${topic}/to-js`, 2);
        await pub(['-t', `${topic}/to-js`, '-q', String(qos), '-m', `from-mosquitto-${qos}`]);
        const got = await js.waitMessage(`${topic}/to-js`);
        assert.equal(got.payload, `from-mosquitto-${qos}`);
        assert.equal(got.qos, qos);
        assert.equal(got.retain, false);
        // MQTT.js publisher -> mosquitto_sub
        const s = await sub(['-t', `${topic}/to-mosquitto`, '-q', '2', '-C', '1']);
        await js.publish(`${topic}/to-mosquitto`, `from-js-${qos}`, qos);
        const msgs = await subExit(s);
        assert.deepEqual(msgs, [{ topic: `${topic}/to-mosquitto`, qos, retain: 0, payload: `from-js-${qos}` }]);
      });
    }

    it('QoS of delivery is the minimum of publish and subscription QoS', async (t) => {
      t.after(killAll);
      const topic = uid('mq/downgrade');
      const s = await sub(['-t', topic, '-q', '1', '-C', '1']);
      await pub(['-t', topic, '-q', '2', '-m', 'down']);
      assert.deepEqual(await subExit(s), [{ topic, qos: 1, retain: 0, payload: 'down' }]);
    });

    it('retained message: set, received by a later subscriber with the retain flag, deleted by an empty payload', async (t) => {
      t.after(killAll);
      const topic = uid('mq/retained');
      const sentinel = `${topic}-sentinel`;
      // A subscriber already present gets the retained publish live, with retain 0.
      const live = await sub(['-t', topic, '-q', '1', '-C', '1']);
      await pub(['-t', topic, '-q', '1', '-r', '-m', 'kept']);
      assert.deepEqual(await subExit(live), [{ topic, qos: 1, retain: 0, payload: 'kept' }]);
      // A later subscriber gets it from the store, with retain 1 (twice, to see it is kept).
      for (let i = 0; i < 2; i++) {
        const later = await sub(['-t', topic, '-q', '1', '-C', '1']);
        assert.deepEqual(await subExit(later), [{ topic, qos: 1, retain: 1, payload: 'kept' }]);
      }
      // Delete with an empty retained payload (-n: null message).
      await pub(['-t', topic, '-q', '1', '-r', '-n']);
      // A new subscriber must get nothing on `topic`: the first (and only) message it sees is the
      // sentinel we publish after its SUBACK (retained messages are sent right after the SUBACK).
      const after = await sub(['-t', topic, '-t', sentinel, '-q', '1', '-C', '1']);
      await pub(['-t', sentinel, '-q', '1', '-m', 'sentinel']);
      assert.deepEqual(await subExit(after), [{ topic: sentinel, qos: 1, retain: 0, payload: 'sentinel' }]);
    });

    it('will message is published when the client is killed (SIGKILL), not after a clean exit', async (t) => {
      t.after(killAll);
      const willTopic = uid('mq/will');
      await js.subscribe(`${willTopic}/#`, 2);
      // Killed: the will goes out.
      const victim = await sub(['-t', uid('mq/unused'), '--will-topic', `${willTopic}/killed`, '--will-payload', 'gone', '--will-qos', '1']);
      victim.kill('SIGKILL');
      await victim.waitExit(5_000);
      const will = await js.waitMessage(`${willTopic}/killed`, 5_000);
      assert.equal(will.payload, 'gone');
      assert.equal(will.qos, 1);
      assert.equal(will.retain, false);
      // Clean exit (-E: exit after SUBACK, with DISCONNECT): no will.
      const clean = startProc('mosquitto_sub', [
        ...base(),
        '-E',
        '-t',
        uid('mq/unused'),
        '--will-topic',
        `${willTopic}/clean`,
        '--will-payload',
        'should-not-be-sent',
        '--will-qos',
        '1',
      ]);
      const exit = await clean.waitExit(10_000);
      assert.equal(exit.code, 0, clean.describe());
      await js.publish(`${willTopic}/sentinel`, 'sentinel', 1);
      await js.waitMessage(`${willTopic}/sentinel`);
      await sleep(500);
      assert.deepEqual(
        js.messages.filter((m) => m.topic === `${willTopic}/clean`),
        [],
        'the will of a client that disconnected normally must be discarded',
      );
    });

    it('persistent session: messages published while offline are delivered exactly once on resume', async (t) => {
      t.after(killAll);
      const id = uid('mqsess');
      const topic = uid('mq/session');
      const sentinel = uid('mq/sentinel');
      const persistent = V === '5' ? ['-c', '-x', '300'] : ['-c'];
      // 1. Subscribe with a persistent session, then exit normally.
      const first = startProc('mosquitto_sub', [...base(), ...persistent, '-i', id, '-q', '2', '-t', `${topic}/#`, '-E']);
      assert.equal((await first.waitExit(10_000)).code, 0, first.describe());
      // 2. Publish QoS 1 and 2 while it is offline.
      const queued: Array<{ topic: string; qos: number; payload: string }> = [
        { topic: `${topic}/a`, qos: 1, payload: 'q1-first' },
        { topic: `${topic}/a`, qos: 1, payload: 'q1-second' },
        { topic: `${topic}/b`, qos: 2, payload: 'q2-first' },
        { topic: `${topic}/b`, qos: 2, payload: 'q2-second' },
      ];
      for (const m of queued) await pub(['-t', m.topic, '-q', String(m.qos), '-m', m.payload]);
      // 3. Resume (subscribing only to an unrelated sentinel topic: the queued messages come from
      //    the session). Once the 4 arrived, publish the sentinel: the 5th and last message.
      const resumed = await sub([...persistent, '-i', id, '-q', '1', '-t', sentinel, '-C', String(queued.length + 1)]);
      await resumed.waitFor(() => messagesOf(resumed).length >= queued.length, 8_000, 'the queued messages');
      await pub(['-t', sentinel, '-q', '1', '-m', 'sentinel']);
      const got = await subExit(resumed);
      assert.equal(got.length, queued.length + 1, JSON.stringify(got));
      assert.deepEqual(got.at(-1), { topic: sentinel, qos: 1, retain: 0, payload: 'sentinel' });
      const key = (m: { topic: string; qos: number; payload: string }) => `${m.topic} q${m.qos} ${m.payload}`;
      assert.deepEqual(got.slice(0, -1).map(key).sort(), queued.map(key).sort());
      assert.ok(got.every((m) => m.retain === 0));
      // Per-topic order is kept.
      assert.deepEqual(
        got.filter((m) => m.topic === `${topic}/a`).map((m) => m.payload),
        ['q1-first', 'q1-second'],
      );
      // 4. Resume again: they were acknowledged, so nothing is redelivered; the first message is
      //    a new sentinel.
      const again = await sub([...persistent, '-i', id, '-q', '1', '-t', sentinel, '-C', '1']);
      await pub(['-t', sentinel, '-q', '1', '-m', 'sentinel-2']);
      assert.deepEqual(await subExit(again), [{ topic: sentinel, qos: 1, retain: 0, payload: 'sentinel-2' }]);
      // 5. The original subscription is still part of the session.
      const live = await sub([...persistent, '-i', id, '-q', '1', '-t', sentinel, '-C', '1']);
      await pub(['-t', `${topic}/c`, '-q', '2', '-m', 'live']);
      assert.deepEqual(await subExit(live), [{ topic: `${topic}/c`, qos: 2, retain: 0, payload: 'live' }]);
    });
  });
}
