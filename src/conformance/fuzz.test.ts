/**
 * Property-based robustness tests (fast-check): the Decoder on random and mutated byte streams,
 * then a live broker fed mutated CONNECT/PUBLISH/SUBSCRIBE streams over real TCP connections.
 *
 * Seeds are fixed so failures reproduce; a failure prints the shrunk input as hex.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { Decoder, encode, type DecodeError, type Packet } from '../codec/codec.js';
import { RC } from '../codec/reason-codes.js';
import { createLogger } from '../log.js';
import { RawClient, captureLogs, startTestBroker, type LogLine, type TestBroker } from '../testing/harness.js';

type Version = 3 | 4 | 5;
const MiB = 1024 * 1024;

/**
 * Fixed seeds by default so a failure reproduces; `SKEIN_FUZZ_SEED=<n>` explores elsewhere and
 * `SKEIN_FUZZ_SCALE=<k>` multiplies the number of runs (for a longer local session).
 */
const SEED_ENV = process.env.SKEIN_FUZZ_SEED;
const SCALE = Math.max(1, Number(process.env.SKEIN_FUZZ_SCALE ?? 1) || 1);
function cfg(seed: number, numRuns: number): { seed: number; numRuns: number } {
  return { seed: SEED_ENV !== undefined ? Number(SEED_ENV) + seed : seed, numRuns: numRuns * SCALE };
}

// ------------------------------------------------------------------ decoding helpers

interface Trace {
  /** Events in order: 'p' for a packet, 'e' for an error. */
  events: string[];
  packets: Packet[];
  errors: DecodeError[];
  thrown: unknown[];
}

function runDecoder(chunks: Uint8Array[], opts: { version?: Version; maxPacketSize?: number } = {}): Trace {
  const t: Trace = { events: [], packets: [], errors: [], thrown: [] };
  const d = new Decoder(
    {
      packet: (p) => {
        t.events.push('p');
        t.packets.push(p);
      },
      error: (e) => {
        t.events.push('e');
        t.errors.push(e);
      },
    },
    opts.maxPacketSize ?? MiB,
  );
  if (opts.version !== undefined) d.protocolVersion = opts.version;
  for (const c of chunks) {
    try {
      d.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    } catch (err) {
      t.thrown.push(err);
    }
  }
  return t;
}

/** The Decoder's contract: never throws; packets, then at most one error, then nothing. */
function assertContract(t: Trace, input: Uint8Array): void {
  const hex = Buffer.from(input).toString('hex');
  assert.deepEqual(t.thrown, [], `push threw on ${hex}`);
  assert.ok(t.errors.length <= 1, `${t.errors.length} errors on ${hex}`);
  if (t.errors.length === 1) {
    assert.equal(t.events[t.events.length - 1], 'e', `packet emitted after the error on ${hex}`);
    assert.ok(
      t.errors[0]!.reasonCode === RC.MalformedPacket || t.errors[0]!.reasonCode === RC.PacketTooLarge,
      `unexpected reason code ${t.errors[0]!.reasonCode} on ${hex}`,
    );
    assert.equal(typeof t.errors[0]!.message, 'string');
  }
  for (const p of t.packets) assert.equal(typeof p.cmd, 'string', `packet without cmd on ${hex}`);
}

/** Splits `bytes` at the given cut points (mod length). */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  if (bytes.length === 0) return [bytes];
  const points = [...new Set(cuts.map((c) => c % bytes.length))].filter((c) => c > 0).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

function bytewise(bytes: Uint8Array): Uint8Array[] {
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
}

// ------------------------------------------------------------------ packet arbitraries

const level = fc.constantFrom('a', 'b', 'sensors', 'temp', 'x y', 'é', '$SYS', '');
const topicName = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((t) => t.length > 0);
const topicFilter = fc
  .array(fc.oneof(level, fc.constant('+')), { minLength: 1, maxLength: 4 })
  .chain((l) => fc.boolean().map((hash) => (hash ? [...l, '#'] : l).join('/')))
  .filter((t) => t.length > 0);
const smallBytes = fc.uint8Array({ maxLength: 48 }).map((u) => Buffer.from(u));
const messageId = fc.integer({ min: 1, max: 65535 });
const userProps = fc.dictionary(fc.constantFrom('k', 'trace', 'x'), fc.constantFrom('v', '1', ''), { minKeys: 1, maxKeys: 2 });

function connectArb(v: Version): fc.Arbitrary<Packet> {
  const props =
    v === 5
      ? fc.option(
          fc.record(
            {
              sessionExpiryInterval: fc.constantFrom(0, 10, 0xffffffff),
              receiveMaximum: fc.integer({ min: 1, max: 100 }),
              maximumPacketSize: fc.constantFrom(128, 4096, MiB),
              topicAliasMaximum: fc.integer({ min: 0, max: 10 }),
              requestProblemInformation: fc.boolean(),
              userProperties: userProps,
            },
            { requiredKeys: [] },
          ),
          { nil: undefined },
        )
      : fc.constant(undefined);
  const will = fc.option(
    fc.record({
      topic: topicName,
      payload: smallBytes,
      qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
      retain: fc.boolean(),
      ...(v === 5 ? { properties: fc.record({ willDelayInterval: fc.constantFrom(0, 1) }, { requiredKeys: [] }) } : {}),
    }),
    { nil: undefined },
  );
  return fc
    .record({
      // 3.1 requires a client id of 1 to 23 characters (3.1 §3.1); the encoder refuses an empty one.
      clientId: v === 3 ? fc.constantFrom('fz-1', 'fz-2', 'fz-3') : fc.constantFrom('fz-1', 'fz-2', 'fz-3', 'fz-' + 'x'.repeat(30), ''),
      clean: fc.boolean(),
      keepalive: fc.integer({ min: 0, max: 300 }),
      will,
      username: fc.option(fc.constantFrom('u', 'admin'), { nil: undefined }),
      password: fc.option(smallBytes, { nil: undefined }),
      properties: props,
    })
    .map((r) => {
      const p: Record<string, unknown> = {
        cmd: 'connect',
        protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
        protocolVersion: v,
        clientId: r.clientId,
        // The encoder refuses an empty client id without a clean session.
        clean: r.clientId === '' ? true : r.clean,
        keepalive: r.keepalive,
      };
      if (r.will) p.will = r.will;
      if (r.username !== undefined) {
        p.username = r.username;
        if (r.password !== undefined) p.password = r.password;
      }
      if (r.properties) p.properties = r.properties;
      return p as unknown as Packet;
    });
}

function publishArb(v: Version): fc.Arbitrary<Packet> {
  const props =
    v === 5
      ? fc.option(
          fc.record(
            {
              payloadFormatIndicator: fc.boolean(),
              messageExpiryInterval: fc.integer({ min: 0, max: 100 }),
              topicAlias: fc.integer({ min: 1, max: 12 }),
              responseTopic: topicName,
              correlationData: smallBytes,
              contentType: fc.constantFrom('text/plain', ''),
              userProperties: userProps,
            },
            { requiredKeys: [] },
          ),
          { nil: undefined },
        )
      : fc.constant(undefined);
  return fc
    .record({ topic: topicName, payload: smallBytes, qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(), dup: fc.boolean(), messageId, properties: props })
    .map((r) => {
      const p: Record<string, unknown> = { cmd: 'publish', topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain, dup: r.qos > 0 && r.dup };
      if (r.qos > 0) p.messageId = r.messageId;
      if (r.properties) p.properties = r.properties;
      return p as unknown as Packet;
    });
}

function subscribeArb(v: Version): fc.Arbitrary<Packet> {
  const sub = fc.record({
    topic: fc.oneof(topicFilter, fc.constant('$share/g/a/#')),
    qos: fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>,
    ...(v === 5 ? { nl: fc.boolean(), rap: fc.boolean(), rh: fc.constantFrom(0, 1, 2) } : {}),
  });
  return fc
    .record({
      messageId,
      subscriptions: fc.array(sub, { minLength: 1, maxLength: 3 }),
      properties: v === 5 ? fc.option(fc.record({ subscriptionIdentifier: fc.integer({ min: 1, max: 300 }) }), { nil: undefined }) : fc.constant(undefined),
    })
    .map((r) => {
      const p: Record<string, unknown> = { cmd: 'subscribe', messageId: r.messageId, subscriptions: r.subscriptions };
      if (r.properties) p.properties = r.properties;
      return p as unknown as Packet;
    });
}

function unsubscribeArb(): fc.Arbitrary<Packet> {
  return fc
    .record({ messageId, unsubscriptions: fc.array(topicFilter, { minLength: 1, maxLength: 3 }) })
    .map((r) => ({ cmd: 'unsubscribe', ...r }) as unknown as Packet);
}

const pingreq = fc.constant({ cmd: 'pingreq' } as unknown as Packet);

interface ValidStream {
  version: Version;
  packets: Packet[];
  bytes: Uint8Array;
}

/** CONNECT followed by up to `max` packets of the given kinds, encoded in the CONNECT's version. */
function streamArb(kinds: Array<'publish' | 'subscribe' | 'unsubscribe' | 'pingreq'>, max = 6): fc.Arbitrary<ValidStream> {
  return fc.constantFrom<Version>(3, 4, 5).chain((v) => {
    const byKind = {
      publish: publishArb(v),
      subscribe: subscribeArb(v),
      unsubscribe: unsubscribeArb(),
      pingreq,
    };
    return fc.tuple(connectArb(v), fc.array(fc.oneof(...kinds.map((k) => byKind[k])), { maxLength: max })).map(([c, rest]) => {
      const packets = [c, ...rest];
      const encoded = packets.map((p) => encode(p, v));
      // mqtt-packet's generate returns an empty buffer (no exception) for some invalid packets.
      if (encoded.some((b) => b.length === 0)) throw new Error(`generator produced an unencodable packet: ${JSON.stringify(packets)}`);
      return { version: v, packets, bytes: new Uint8Array(Buffer.concat(encoded)) };
    });
  });
}

type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'set'; pos: number; value: number }
  | { kind: 'insert'; pos: number; bytes: Uint8Array }
  | { kind: 'delete'; pos: number; len: number }
  | { kind: 'truncate'; pos: number }
  | { kind: 'duplicate'; pos: number; len: number };

const pos = fc.nat({ max: 4096 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), pos, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), pos, value: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x01, 0x02, 0xc0) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pos, len: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), pos }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), pos, len: fc.integer({ min: 1, max: 16 }) }) },
);

function mutate(input: Uint8Array, muts: Mutation[]): Uint8Array {
  let b = Buffer.from(input);
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.pos % b.length;
    switch (m.kind) {
      case 'flip':
        b[at] = b[at]! ^ (1 << m.bit);
        break;
      case 'set':
        b[at] = m.value;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'duplicate':
        b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at, at + m.len), b.subarray(at + m.len)]);
        break;
    }
  }
  return new Uint8Array(b);
}

const mutatedArb = (kinds: Parameters<typeof streamArb>[0]) =>
  fc.tuple(streamArb(kinds), fc.array(mutationArb, { minLength: 1, maxLength: 5 })).map(([s, muts]) => ({ ...s, mutated: mutate(s.bytes, muts), muts }));

// ------------------------------------------------------------------ (a) + (b) decoder

describe('fuzz: decoder', () => {
  test('(a) random bytes, any chunking, any version and size limit: never throws, packets then at most one error', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.constantFrom<Version | undefined>(undefined, 3, 4, 5),
        fc.constantFrom(8, 64, 1024, MiB),
        fc.array(fc.nat(), { maxLength: 8 }),
        (bytes, version, maxPacketSize, cuts) => {
          assertContract(runDecoder([bytes], { version, maxPacketSize }), bytes);
          assertContract(runDecoder(split(bytes, cuts), { version, maxPacketSize }), bytes);
        },
      ),
      cfg(0x5ce1, 3000),
    );
  });

  test('(a) random bytes behind a valid CONNECT header prefix: never throws', () => {
    // Random bodies are mostly rejected at the first byte; this reaches the CONNECT and property parsers.
    const prefix = fc.constantFrom(
      Buffer.from([0x10]), // CONNECT, random Remaining Length onwards
      Buffer.from([0x10, 0x20, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05]), // CONNECT 5.0, random flags onwards
      Buffer.from([0x30]),
      Buffer.from([0x82]),
    );
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 200 }), fc.constantFrom<Version | undefined>(undefined, 5), (p, rest, version) => {
        const bytes = new Uint8Array(Buffer.concat([p, rest]));
        assertContract(runDecoder([bytes], { version }), bytes);
        assertContract(runDecoder(bytewise(bytes), { version }), bytes);
      }),
      cfg(0x5ce2, 3000),
    );
  });

  test('(b) valid CONNECT/PUBLISH/SUBSCRIBE/UNSUBSCRIBE/PINGREQ streams decode completely at any chunking', () => {
    fc.assert(
      fc.property(streamArb(['publish', 'subscribe', 'unsubscribe', 'pingreq']), fc.array(fc.nat(), { maxLength: 10 }), (s, cuts) => {
        for (const chunks of [[s.bytes], split(s.bytes, cuts), bytewise(s.bytes)]) {
          const t = runDecoder(chunks);
          assertContract(t, s.bytes);
          assert.deepEqual(t.errors, [], Buffer.from(s.bytes).toString('hex'));
          assert.deepEqual(
            t.packets.map((p) => p.cmd),
            s.packets.map((p) => p.cmd),
          );
          // Each decoded packet re-encodes to exactly the bytes it came from.
          assert.equal(Buffer.concat(t.packets.map((p) => encode(p, s.version))).toString('hex'), Buffer.from(s.bytes).toString('hex'));
        }
      }),
      cfg(0x5ce3, 500),
    );
  });

  test('(b) mutated valid streams (flip/set/insert/delete/truncate/duplicate): never throws, packets then at most one error', () => {
    fc.assert(
      fc.property(mutatedArb(['publish', 'subscribe', 'unsubscribe', 'pingreq']), fc.array(fc.nat(), { maxLength: 8 }), fc.constantFrom(64, 1024, MiB), (m, cuts, maxPacketSize) => {
        assertContract(runDecoder([m.mutated], { maxPacketSize }), m.mutated);
        assertContract(runDecoder(split(m.mutated, cuts), { maxPacketSize }), m.mutated);
        assertContract(runDecoder(bytewise(m.mutated), { maxPacketSize }), m.mutated);
      }),
      cfg(0x5ce4, 3000),
    );
  });

  test('(b) one flipped bit: the packets before it are still decoded', () => {
    // Whatever the corruption, packets that precede it in the stream are decoded intact.
    fc.assert(
      fc.property(streamArb(['publish', 'subscribe', 'unsubscribe', 'pingreq']), fc.nat(), fc.integer({ min: 0, max: 7 }), (s, at, bit) => {
        const sizes = s.packets.map((p) => encode(p, s.version).length);
        const flipAt = at % s.bytes.length;
        const mutated = new Uint8Array(s.bytes);
        mutated[flipAt] = mutated[flipAt]! ^ (1 << bit);
        let intact = 0;
        for (let offset = 0, i = 0; i < sizes.length && offset + sizes[i]! <= flipAt; offset += sizes[i]!, i++) intact++;
        const t = runDecoder(bytewise(mutated));
        assertContract(t, mutated);
        assert.ok(t.packets.length >= intact, `only ${t.packets.length} of ${intact} intact packets decoded`);
        for (let i = 0; i < intact; i++) assert.equal(t.packets[i]!.cmd, s.packets[i]!.cmd);
      }),
      cfg(0x5ce5, 1000),
    );
  });
});

// ------------------------------------------------------------------ (c) live broker


describe('fuzz: live broker', () => {
  let broker: TestBroker | undefined;
  let logs: LogLine[] = [];
  after(async () => {
    await broker?.stop();
  });

  test('(c) mutated CONNECT/PUBLISH/SUBSCRIBE streams over 300 TCP connections leave the broker healthy', async (t) => {
    const captured = captureLogs();
    logs = captured.lines;
    const sink = captured.sink;
    broker = await startTestBroker({}, { logger: createLogger('warn', { destination: sink }) });
    const port = broker.port;

    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;

    // Anything escaping the broker's own handlers during the runs, with the input being fed.
    const escaped: string[] = [];
    let current = '';
    const onUncaught = (err: Error) => escaped.push(`uncaught ${err.stack ?? err.message}\ninput: ${current}`);
    const onRejection = (err: unknown) => escaped.push(`unhandled rejection ${(err as Error)?.stack ?? String(err)}\ninput: ${current}`);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onRejection);

    const hangs: string[] = [];
    const notClosed: string[] = [];
    let runs = 0;
    let malformedRuns = 0;

    async function exercise(bytes: Uint8Array, writes: number[], mode: 'end' | 'destroy' | 'wait'): Promise<void> {
      runs++;
      current = Buffer.from(bytes).toString('hex');
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      let closedByServer = false;
      socket.once('end', () => (closedByServer = true));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('connect timeout')), 2000);
        socket.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      for (const chunk of split(bytes, writes)) if (chunk.length) socket.write(chunk);
      socket.resume(); // discard whatever the broker answers
      if (mode === 'destroy') {
        socket.destroy();
      } else if (mode === 'wait') {
        // Input our own decoder rejects (whole and byte by byte) must make the broker close the
        // connection by itself [MQTT-4.8.0-1] / 5.0 §4.13.
        const whole = runDecoder([bytes]);
        const bytewiseTrace = runDecoder(bytewise(bytes));
        const malformed = whole.errors.length === 1 && bytewiseTrace.errors.length === 1;
        if (malformed) malformedRuns++;
        const waited = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), malformed ? 1500 : 30))]);
        if (malformed && !waited && !closedByServer) {
          notClosed.push(`${current} (${whole.errors[0]!.message})`);
        }
        socket.end();
      } else {
        socket.end();
      }
      const ok = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))]);
      if (!ok) {
        hangs.push(current);
        socket.destroy();
        await closed;
      }
    }

    // Warm up, then take the heap baseline.
    for (let i = 0; i < 10; i++) await exercise(new Uint8Array(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'warm', clean: true, keepalive: 10 } as Packet, 4)), [], 'end');
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const errorLogsBefore = logs.filter((l) => l.level >= 50).length;

    try {
      await fc.assert(
        fc.asyncProperty(
          mutatedArb(['publish', 'subscribe']),
          fc.array(fc.nat(), { maxLength: 2 }),
          fc.constantFrom<'end' | 'destroy' | 'wait'>('end', 'end', 'destroy', 'wait', 'wait'),
          fc.boolean(),
          async (m, writes, mode, unmutated) => {
            const bytes = unmutated ? m.bytes : m.mutated;
            const escapedBefore = escaped.length;
            const errorsBefore = logs.filter((l) => l.level >= 50).length;
            await exercise(bytes, writes, mode);
            await new Promise((r) => setImmediate(r));
            const hex = Buffer.from(bytes).toString('hex');
            assert.equal(escaped.length, escapedBefore, `escaped from the broker on input ${hex}:\n${escaped.slice(escapedBefore).join('\n')}`);
            const newErrors = logs.filter((l) => l.level >= 50).slice(errorsBefore);
            assert.deepEqual(
              newErrors.map((l) => `${l.msg}: ${l.err?.stack ?? ''}`),
              [],
              `broker logged errors on input ${hex}`,
            );
            assert.deepEqual(hangs, [], 'connections the broker never closed');
          },
        ),
        { ...cfg(0x5ce6, 300), endOnFailure: true },
      );
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onRejection);
    }
    assert.ok(runs >= 300, `only ${runs} connections made`);
    t.diagnostic(`${runs} connections; ${malformedRuns} fed input our decoder rejects and were left for the broker to close`);

    // The broker still works for a normal client: connect, subscribe, publish, receive.
    const sub = await RawClient.connect(port, 4);
    const pub = await RawClient.connect(port, 5);
    try {
      assert.equal((await sub.handshake({ clientId: 'after-fuzz-sub' })).returnCode, 0);
      assert.equal((await pub.handshake({ clientId: 'after-fuzz-pub' })).reasonCode, 0);
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'after/fuzz/#', qos: 1 }] });
      assert.deepEqual(((await sub.next('suback')) as { granted: number[] }).granted, [1]);
      pub.send({ cmd: 'publish', topic: 'after/fuzz/x', qos: 1, messageId: 9, payload: Buffer.from('still alive'), retain: false, dup: false });
      const ack = (await pub.next('puback')) as { messageId: number };
      assert.equal(ack.messageId, 9);
      const got = (await sub.next('publish')) as { topic: string; payload: Buffer };
      assert.equal(got.topic, 'after/fuzz/x');
      assert.equal(got.payload.toString(), 'still alive');
    } finally {
      sub.destroy();
      pub.destroy();
      await Promise.all([sub.closedPromise, pub.closedPromise]);
    }

    // Every connection is gone: the broker's count of connected clients returns to zero.
    const deadline = Date.now() + 5000;
    while (broker.node.broker.targets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(broker.node.broker.targets.size, 0, `still connected: ${[...broker.node.broker.targets.keys()].join(', ')}`);

    // The heap did not grow beyond a generous bound (sessions of clean=false clients are kept).
    gc();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    t.diagnostic(`heap grew by ${(grown / MiB).toFixed(1)} MiB over ${runs} connections`);
    assert.ok(grown < 64 * MiB, `heap grew by ${(grown / MiB).toFixed(1)} MiB`);

    assert.deepEqual(notClosed, [], 'malformed input left the connection open');
    assert.equal(logs.filter((l) => l.level >= 50).length, errorLogsBefore, 'broker logged errors');
    const warns = logs.filter((l) => l.level === 40);
    if (warns.length) t.diagnostic(`broker warnings: ${[...new Set(warns.map((l) => `${l.msg}: ${l.err?.message ?? ''}`))].join(' | ')}`);
  });
});
