/**
 * ACL fuzzing against a live broker (fast-check): a password file and an ACL file, and many
 * unauthenticated and authenticated-but-restricted TCP connections sending CONNECT / PUBLISH /
 * SUBSCRIBE streams built for forbidden topics and then mutated (flags, topic bytes, lengths,
 * wildcards, `$share/...`, topic aliases, QoS, retain, byte flips / inserts / deletes / cuts).
 *
 * The rules (ACL file below; `auth.allowAnonymous: true`):
 *   anonymous  -> readwrite `public/#` only
 *   alice      -> readwrite `alice/#` only (password file)
 *   bob        -> in the password file, no ACL line: nothing
 *   watcher    -> readwrite `#` (our observer; its password is random, never sent by a fuzz run)
 *
 * Phase A never sends alice's password: nothing outside `public/#` may be delivered to anyone or
 * retained. Phase B adds alice: nothing outside `public/#` and `alice/#`. A fuzz connection whose
 * CONNECT went out unmutated has a known identity and may receive only its own rules' topics.
 * "Seed" messages (retained and live, on `secret/...` and `alice/...`) are published by a second
 * watcher connection during the runs so that a subscription that slipped through would receive
 * them. The broker must not crash, must answer a legitimate round trip after every batch, must not
 * log errors, and its heap must stay within a generous bound.
 *
 * Fixed seeds; `SKEIN_FUZZ_SEED=<n>` explores elsewhere, `SKEIN_FUZZ_SCALE=<k>` multiplies the
 * batches (figures of a longer run: src/auth/README.md).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { encode, type Packet } from '../codec/codec.js';
import { defaultConfig } from '../config/schema.js';
import { createLogger } from '../log.js';
import { startNode, type SkeinNode } from '../node.js';
import { JsClient, endAllJs, sleep, tempDir } from '../interop/helpers.js';
import { RawClient, captureLogs } from '../testing/harness.js';
import { hashPassword } from './password-file.js';

type Version = 3 | 4 | 5;
const MiB = 1024 * 1024;
const SEED_ENV = process.env.SKEIN_FUZZ_SEED;
const SCALE = Math.max(1, Number(process.env.SKEIN_FUZZ_SCALE ?? 1) || 1);
/** Batches per phase and connections per batch (run concurrently). */
const BATCHES = 80 * SCALE;
const PER_BATCH = 8;

const ACL = `# anonymous clients
topic readwrite public/#

user alice
topic readwrite alice/#

user watcher
topic readwrite #
`;

// ------------------------------------------------------------------ what is allowed

const under = (prefix: string) => (t: string) => t === prefix || t.startsWith(`${prefix}/`);
const isPublic = under('public');
const isAlice = under('alice');
type Identity = 'anonymous' | 'alice' | 'alice-badpw' | 'bob' | 'watcher-badpw' | 'unknown';
/** Topics a client of this identity may receive or publish (refused identities: none). */
const allowedFor: Record<Identity, (t: string) => boolean> = {
  anonymous: isPublic,
  alice: isAlice,
  'alice-badpw': () => false,
  bob: () => false,
  'watcher-badpw': () => false,
  unknown: () => false,
};
type Phase = 'A' | 'B';
const allowedInPhase = (phase: Phase) => (t: string) => isPublic(t) || (phase === 'B' && isAlice(t));
/** A subscription filter (without `$share/<group>/`) any fuzz identity could have been granted. */
function filterAllowed(phase: Phase, filter: string): boolean {
  const m = /^\$share\/[^/]+\/(.*)$/.exec(filter);
  const f = m ? m[1]! : filter;
  return allowedInPhase(phase)(f);
}

// ------------------------------------------------------------------ generators

const FORBIDDEN_TOPICS = [
  'secret/a',
  'secret',
  'alice/x',
  'alice/deep/er',
  'bob/x',
  'publicX/a',
  'Public/a',
  '/public/a',
  'public/../secret',
  'alice/../public/a',
  'public/a\u0000secret',
  '$SYS/broker/x',
  '$share/g/public/a',
  '$CONTROL/dynamic-security/v1',
  'public/#',
  'public/+/a',
  '#',
  '+',
];
const ALLOWED_TOPICS = ['public/a', 'public', 'public/b/c', 'alice/a', 'alice'];
const FILTERS = [
  '#',
  '+/#',
  '+',
  '+/a',
  'secret/#',
  'alice/#',
  'alice/+',
  'public/#',
  'public/+',
  'public/#/x',
  '$share/g/#',
  '$share/g/secret/#',
  '$share/g/public/#',
  '$share/g/alice/#',
  '$share//#',
  '$share/g',
  '$SYS/#',
  '$CONTROL/#',
  '/#',
  'publi+/#',
];

interface Run {
  version: Version;
  identity: Identity;
  connect: Packet;
  packets: Packet[];
}

const bytes = fc.uint8Array({ maxLength: 24 }).map((u) => Buffer.from(u));
const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
const messageId = fc.integer({ min: 1, max: 65535 });

function identityArb(phase: Phase): fc.Arbitrary<Identity> {
  const base: Identity[] = ['anonymous', 'alice-badpw', 'bob', 'watcher-badpw', 'unknown'];
  return phase === 'A' ? fc.constantFrom(...base) : fc.oneof({ weight: 3, arbitrary: fc.constant<Identity>('alice') }, { weight: 4, arbitrary: fc.constantFrom(...base) });
}

const CREDENTIALS: Record<Identity, { username?: string; password?: string }> = {
  anonymous: {},
  alice: { username: 'alice', password: 'alice-pw' },
  'alice-badpw': { username: 'alice', password: 'alice-pw!' },
  bob: { username: 'bob', password: 'bob-pw' },
  'watcher-badpw': { username: 'watcher', password: 'guess' },
  unknown: { username: 'mallory', password: 'x' },
};

function publishArb(v: Version): fc.Arbitrary<Packet[]> {
  const topic = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...FORBIDDEN_TOPICS) }, { weight: 1, arbitrary: fc.constantFrom(...ALLOWED_TOPICS) });
  return fc
    .record({
      topic,
      qos,
      retain: fc.boolean(),
      dup: fc.boolean(),
      messageId,
      payload: fc.oneof(bytes, fc.constant(Buffer.alloc(0))),
      // v5 topic aliases: map an alias with an allowed topic, then re-use it (empty topic) or
      // re-map it to a forbidden one.
      alias: v === 5 ? fc.option(fc.record({ n: fc.integer({ min: 1, max: 3 }), first: fc.constantFrom(...ALLOWED_TOPICS), reuse: fc.boolean() }), { nil: undefined }) : fc.constant(undefined),
    })
    .map((r) => {
      const pub = (t: string, props?: Record<string, unknown>): Packet => {
        const p: Record<string, unknown> = { cmd: 'publish', topic: t, payload: r.payload, qos: r.qos, retain: r.retain, dup: r.qos > 0 && r.dup };
        if (r.qos > 0) p.messageId = r.messageId;
        if (props) p.properties = props;
        return p as unknown as Packet;
      };
      if (!r.alias) return [pub(r.topic)];
      const { n, first, reuse } = r.alias;
      return [pub(first, { topicAlias: n }), reuse ? pub('', { topicAlias: n }) : pub(r.topic, { topicAlias: n })];
    });
}

function subscribeArb(v: Version): fc.Arbitrary<Packet[]> {
  const sub = fc.record({
    topic: fc.constantFrom(...FILTERS),
    qos,
    ...(v === 5 ? { nl: fc.boolean(), rap: fc.boolean(), rh: fc.constantFrom(0, 1, 2) } : {}),
  });
  return fc.record({ messageId, subscriptions: fc.array(sub, { minLength: 1, maxLength: 3 }) }).map((r) => [{ cmd: 'subscribe', ...r } as unknown as Packet]);
}

function runArb(phase: Phase): fc.Arbitrary<Run> {
  return fc.constantFrom<Version>(3, 4, 5).chain((v) =>
    fc
      .record({
        identity: identityArb(phase),
        clientId: fc.constantFrom('fz-1', 'fz-2', 'fz-3', 'fz-4', ''),
        clean: fc.boolean(),
        expiry: fc.constantFrom(0, 60),
        will: fc.option(fc.record({ topic: fc.constantFrom(...FORBIDDEN_TOPICS.slice(0, 6), 'public/will'), payload: bytes, qos, retain: fc.boolean() }), { nil: undefined }),
        ops: fc.array(fc.oneof(publishArb(v), subscribeArb(v)), { minLength: 1, maxLength: 6 }),
      })
      .map((r) => {
        const cred = CREDENTIALS[r.identity];
        const clientId = v === 3 && r.clientId === '' ? 'fz-3' : r.clientId;
        const connect: Record<string, unknown> = {
          cmd: 'connect',
          protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
          protocolVersion: v,
          clientId,
          clean: clientId === '' ? true : r.clean,
          keepalive: 30,
        };
        // (A password without a user name comes from mutations: the encoder refuses it.)
        if (cred.username !== undefined) connect.username = cred.username;
        if (cred.password !== undefined) connect.password = Buffer.from(cred.password);
        if (r.will) connect.will = r.will;
        if (v === 5 && r.expiry > 0) connect.properties = { sessionExpiryInterval: r.expiry };
        return { version: v, identity: r.identity, connect: connect as unknown as Packet, packets: r.ops.flat() };
      }),
  );
}

type Mutation = { kind: 'flip'; pos: number; bit: number } | { kind: 'set'; pos: number; value: number } | { kind: 'insert'; pos: number; bytes: Uint8Array } | { kind: 'delete'; pos: number; len: number } | { kind: 'truncate'; pos: number };
const pos = fc.nat({ max: 4096 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), pos, bit: fc.integer({ min: 0, max: 7 }) }) },
  // Bytes that turn topic characters into wildcards, separators, `$`, NUL; flags into QoS 3 etc.
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), pos, value: fc.constantFrom(0x23, 0x2b, 0x2f, 0x24, 0x00, 0xff, 0x7f, 0x80, 0x06, 0x33, 0x3d) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pos, len: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), pos }) },
);

function mutate(input: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.pos % b.length;
    if (m.kind === 'flip') b[at] = b[at]! ^ (1 << m.bit);
    else if (m.kind === 'set') b[at] = m.value;
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
    else b = b.subarray(0, at);
  }
  return b;
}

interface Case {
  run: Run;
  /** CONNECT bytes then the rest (mutations apply after the CONNECT when `keepConnect`). */
  connectBytes: Buffer;
  bytes: Buffer;
  cuts: number[];
}

function caseArb(phase: Phase): fc.Arbitrary<Case | undefined> {
  return fc
    .record({
      run: runArb(phase),
      muts: fc.array(mutationArb, { maxLength: 4 }),
      // Half the cases keep the CONNECT intact (identity known exactly), half mutate anywhere.
      keepConnect: fc.boolean(),
      cuts: fc.array(fc.nat(), { maxLength: 6 }),
    })
    .map(({ run, muts, keepConnect, cuts }) => {
      let connectBytes: Buffer;
      let rest: Buffer[];
      try {
        connectBytes = encode(run.connect, run.version);
        rest = run.packets.map((p) => encode(p, run.version));
      } catch {
        return undefined; // the encoder refuses some combinations (counted below)
      }
      if (connectBytes.length === 0 || rest.some((b) => b.length === 0)) return undefined;
      const tail = Buffer.concat(rest);
      const bytes = keepConnect ? Buffer.concat([connectBytes, mutate(tail, muts)]) : mutate(Buffer.concat([connectBytes, tail]), muts);
      return { run, connectBytes, bytes, cuts };
    });
}

function split(b: Buffer, cuts: number[]): Buffer[] {
  if (b.length === 0) return [b];
  const points = [...new Set(cuts.map((c) => c % b.length))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

// ------------------------------------------------------------------ the test

let node: SkeinNode | undefined;
let dir: { path: string; remove(): void } | undefined;
after(async () => {
  await endAllJs();
  await node?.stop().catch(() => undefined);
  dir?.remove();
});

test('ACL fuzzing: mutated CONNECT/PUBLISH/SUBSCRIBE from anonymous and restricted clients never get past the ACLs', { timeout: 120_000 * SCALE }, async (t) => {
  const started = Date.now();
  dir = tempDir('skein-acl-fuzz-');
  const watcherPw = randomBytes(18).toString('base64url');
  const passwordFile = join(dir.path, 'passwd');
  const aclFile = join(dir.path, 'acl');
  writeFileSync(passwordFile, [`alice:${await hashPassword('alice-pw')}`, `bob:${await hashPassword('bob-pw')}`, `watcher:${await hashPassword(watcherPw)}`, ''].join('\n'));
  writeFileSync(aclFile, ACL);

  const { sink, lines: logs } = captureLogs();
  const config = defaultConfig();
  config.nodeId = 'aclfuzz';
  config.dataDir = dir.path;
  config.listeners = [{ ...config.listeners[0]!, port: 0, host: '127.0.0.1' }];
  config.store.type = 'memory';
  config.sys.intervalMs = 0; // `$SYS/#` off
  config.auth.allowAnonymous = true;
  config.auth.passwordFile = passwordFile;
  config.auth.aclFile = aclFile;
  // Thousands of connections from 127.0.0.1: the per-source CONNECT rate limit would refuse them.
  config.limits.connectRatePerSource = 0;
  config.limits.connectRate = 0;
  node = await startNode(config, { logger: createLogger('warn', { destination: sink }) });
  const broker = node.broker;
  const port = node.addresses[0]!.port;
  const url = `mqtt://127.0.0.1:${port}`;

  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const escaped: string[] = [];
  let current = '';
  const onUncaught = (err: Error) => escaped.push(`uncaught ${err.stack ?? err.message}\ninput: ${current}`);
  const onRejection = (err: unknown) => escaped.push(`unhandled rejection ${(err as Error)?.stack ?? String(err)}\ninput: ${current}`);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onRejection);
  t.after(() => {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onRejection);
  });

  // The watcher sees everything; the seeder (same user, another client id) publishes what a
  // subscription that slipped through would receive.
  const seedToken = `SEED-${randomBytes(8).toString('hex')}`;
  const watcher = await JsClient.connect(url, { clientId: `watcher-${randomBytes(6).toString('hex')}`, username: 'watcher', password: watcherPw, protocolVersion: 5 });
  const seeder = await JsClient.connect(url, { clientId: `seeder-${randomBytes(6).toString('hex')}`, username: 'watcher', password: watcherPw, protocolVersion: 5 });
  await seeder.publish('secret/retained', seedToken, 1, true);
  await seeder.publish('alice/retained', seedToken, 1, true);
  await seeder.publish('public/retained', seedToken, 1, true);
  assert.deepEqual(await watcher.subscribe('#', 2), [2]);
  await watcher.waitFor(() => watcher.messages.filter((m) => m.payload === seedToken).length === 3, 5000, 'retained seeds');
  const seedRetained = broker.retainedCount;
  assert.equal(seedRetained, 3);

  // A legitimate anonymous client: its round trip through the watcher proves the broker answers.
  const legit = await JsClient.connect(url, { clientId: `legit-${randomBytes(6).toString('hex')}`, protocolVersion: 4 });
  let pings = 0;
  const roundTrip = async (label: string) => {
    const payload = `PING-${seedToken}-${++pings}`;
    const t0 = Date.now();
    await legit.publish('public/ping', payload, 1);
    await watcher.waitMessage('public/ping', 5000, payload);
    return Date.now() - t0;
  };
  await roundTrip('warm-up');

  const violations: string[] = [];
  const hangs: string[] = [];
  let connections = 0;
  let unencodable = 0;
  let intactConnects = 0;
  let receivedPublishes = 0;
  let peakHeap = 0;
  let maxRoundTrip = 0;
  const sampleHeap = () => {
    const h = process.memoryUsage().heapUsed;
    if (h > peakHeap) peakHeap = h;
  };

  async function exercise(c: Case, phase: Phase): Promise<void> {
    connections++;
    const hex = c.bytes.toString('hex');
    current = hex;
    const intact = c.bytes.subarray(0, c.connectBytes.length).equals(c.connectBytes);
    if (intact) intactConnects++;
    const may = intact ? allowedFor[c.run.identity] : allowedInPhase(phase);
    const who = intact ? c.run.identity : `mutated CONNECT (phase ${phase})`;
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const parser = mqttPacket.parser({ protocolVersion: c.run.version });
    parser.on('error', () => undefined);
    parser.on('packet', (p: Packet) => {
      if (p.cmd !== 'publish') return;
      receivedPublishes++;
      if (!may(p.topic)) violations.push(`${who} received PUBLISH ${JSON.stringify(p.topic)} (${Buffer.from(p.payload).toString()}); input ${hex}`);
    });
    socket.on('data', (d: Buffer) => {
      try {
        parser.parse(d);
      } catch {
        // a parser left in a bad state by a version mismatch: the topic checks above already ran
      }
    });
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3000);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.once('error', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!connected) {
      hangs.push(`connect failed: ${hex}`);
      return;
    }
    for (const chunk of split(c.bytes, c.cuts)) if (chunk.length) socket.write(chunk);
    // Long enough for SUBACK, retained messages and the seeder's live publishes of the batch.
    await Promise.race([closed, new Promise((r) => setTimeout(r, 120))]);
    socket.end();
    const ok = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))]);
    if (!ok) {
      hangs.push(hex);
      socket.destroy();
    }
  }

  async function phase(name: Phase, seed: number): Promise<void> {
    let batch = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(caseArb(name), { minLength: PER_BATCH, maxLength: PER_BATCH }), async (cases) => {
        batch++;
        const live = (async () => {
          await new Promise((r) => setTimeout(r, 40));
          await seeder.publish('secret/live', seedToken, 0);
          await seeder.publish(name === 'A' ? 'alice/live' : 'bob/live', seedToken, 0);
        })();
        const valid = cases.filter((x): x is Case => x !== undefined);
        unencodable += cases.length - valid.length;
        await Promise.all(valid.map((x) => exercise(x, name)));
        await live;
        sampleHeap();
        maxRoundTrip = Math.max(maxRoundTrip, await roundTrip(`phase ${name} batch ${batch}`));
      }),
      { seed: SEED_ENV !== undefined ? Number(SEED_ENV) + seed : seed, numRuns: BATCHES, endOnFailure: true },
    );
    // Everything the phase's connections published has reached the watcher once a later
    // publish has (one broker, routing in arrival order of the closed connections).
    await roundTrip(`end of phase ${name}`);
  }

  // Warm up (one phase-A batch worth), then the heap baseline.
  gc();
  const heapBefore = process.memoryUsage().heapUsed;

  const watcherChecked = (from: number, name: Phase) => {
    for (const m of watcher.messages.slice(from)) {
      if (m.payload === seedToken || m.payload.startsWith('PING-')) continue;
      if (!allowedInPhase(name)(m.topic)) violations.push(`watcher received ${JSON.stringify(m.topic)} in phase ${name} (retain ${m.retain})`);
    }
    return watcher.messages.length;
  };
  const retainedChecked = async (name: Phase) => {
    const stored = await broker.store.listRetained();
    for (const m of stored) {
      if (m.payload.toString() === seedToken) continue;
      if (!allowedInPhase(name)(m.topic)) violations.push(`retained in the store after phase ${name}: ${JSON.stringify(m.topic)}`);
    }
    for (const m of [...broker.retainedFor('#'), ...broker.retainedFor('$SYS/#'), ...broker.retainedFor('$share/#'), ...broker.retainedFor('$CONTROL/#')]) {
      if (m.payload.toString() === seedToken) continue;
      if (!allowedInPhase(name)(m.topic)) violations.push(`retained in memory after phase ${name}: ${JSON.stringify(m.topic)}`);
    }
    // Memory and store agree (no `$SYS` retained: sys is off).
    assert.equal(broker.retainedCount, stored.length, `retained: ${broker.retainedCount} in memory, ${stored.length} stored`);
  };
  const subscriptionsChecked = (name: Phase) => {
    for (const [clientId, session] of broker.sessions) {
      if (clientId.startsWith('watcher-')) continue;
      for (const f of session.subscriptions.keys()) {
        if (!filterAllowed(name, f)) violations.push(`session ${clientId} holds subscription ${JSON.stringify(f)} after phase ${name}`);
      }
    }
  };

  let mark = watcher.messages.length;
  await phase('A', 0xac1a);
  mark = watcherChecked(mark, 'A');
  await retainedChecked('A');
  subscriptionsChecked('A');
  const afterA = connections;
  await phase('B', 0xac1b);
  watcherChecked(mark, 'B');
  await retainedChecked('B');
  subscriptionsChecked('B');

  // Alice's own round trip still works, and the broker refuses what it must.
  const alice = await JsClient.connect(url, { clientId: `alice-${randomBytes(4).toString('hex')}`, username: 'alice', password: 'alice-pw', protocolVersion: 5 });
  assert.deepEqual(await alice.subscribe('alice/#', 1), [1]);
  await assert.rejects(alice.subscribe('#', 1), /not authorized/i);
  await alice.publish('alice/final', 'ok', 1);
  await alice.waitMessage('alice/final');
  await watcher.waitMessage('alice/final');
  await alice.end();
  await legit.end();
  await seeder.end();

  gc();
  const grown = process.memoryUsage().heapUsed - heapBefore;
  sampleHeap();
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(
    `${connections} connections (${afterA} in phase A, ${connections - afterA} in phase B; ${intactConnects} with an intact CONNECT) in ${2 * BATCHES} batches, ` +
      `${receivedPublishes} PUBLISH received by fuzz connections, ${watcher.messages.length} by the watcher, ${broker.retainedCount} retained; ` +
      `${seconds.toFixed(1)} s; heap grew ${(grown / MiB).toFixed(1)} MiB, peak ${(peakHeap / MiB).toFixed(1)} MiB; slowest round trip ${maxRoundTrip} ms`,
  );

  assert.deepEqual(escaped, [], 'errors escaped from the broker');
  assert.deepEqual(violations.slice(0, 20), [], `${violations.length} ACL violations`);
  assert.deepEqual(hangs, [], 'connections the broker never closed');
  assert.ok(connections >= 2 * BATCHES * PER_BATCH * 0.9, `only ${connections} connections ran (${unencodable} cases unencodable)`);
  // The fuzz reached the interesting paths: connections were admitted and received messages.
  assert.ok(receivedPublishes > 0, 'no fuzz connection ever received a PUBLISH');
  assert.ok(broker.retainedCount > seedRetained, 'no allowed retained message was ever stored');
  assert.ok(grown < 64 * MiB, `heap grew by ${(grown / MiB).toFixed(1)} MiB`);
  const errors = logs.filter((l) => l.level >= 50);
  assert.deepEqual(errors.map((l) => `${l.msg}: ${l.err?.message ?? ''}`), [], 'broker logged errors');
  // Every fuzz connection is gone.
  const deadline = Date.now() + 5000;
  while (broker.clientCounts.connected > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(broker.clientCounts.connected, 1, `still connected: ${[...broker.targets.keys()].join(', ')}`);
  await watcher.end();
});

// ------------------------------------------------------------------ regressions the fuzzing found

test('regressions: a will on a forbidden topic is dropped; messages queued for another identity are not replayed', { timeout: 30_000 }, async (t) => {
  const d = tempDir('skein-acl-reg-');
  const watcherPw = 'w-' + randomBytes(8).toString('hex');
  writeFileSync(join(d.path, 'passwd'), [`alice:${await hashPassword('alice-pw')}`, `watcher:${await hashPassword(watcherPw)}`, ''].join('\n'));
  writeFileSync(join(d.path, 'acl'), ACL);
  const config = defaultConfig();
  config.nodeId = 'aclreg';
  config.dataDir = d.path;
  config.listeners = [{ ...config.listeners[0]!, port: 0, host: '127.0.0.1' }];
  config.store.type = 'memory';
  config.sys.intervalMs = 0;
  config.auth.allowAnonymous = true;
  config.auth.passwordFile = join(d.path, 'passwd');
  config.auth.aclFile = join(d.path, 'acl');
  const n = await startNode(config, { logger: createLogger((process.env.SKEIN_TEST_LOG as 'silent') ?? 'silent') });
  t.after(async () => {
    await endAllJs();
    await n.stop();
    d.remove();
  });
  const port = n.addresses[0]!.port;
  const watcher = await JsClient.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'reg-watcher', username: 'watcher', password: watcherPw, protocolVersion: 5 });
  await watcher.subscribe('#', 1);

  // Anonymous wills: the forbidden one is dropped (the client still connects), the allowed one fires.
  for (const topic of ['secret/will', 'public/will']) {
    const c = await RawClient.connect(port, 4);
    const ack = await c.handshake({ clientId: `will-${topic.split('/')[0]}`, will: { topic, payload: Buffer.from('bye'), qos: 1, retain: true } });
    assert.equal(ack.returnCode, 0);
    c.destroy(); // abnormal close: the will is due
  }
  await watcher.waitMessage('public/will');
  await sleep(100);
  assert.equal(watcher.messages.some((m) => m.topic === 'secret/will'), false, 'forbidden will published');
  assert.deepEqual(n.broker.retainedFor('secret/#'), [], 'forbidden will retained');

  // alice's persistent session gets a QoS 1 message while offline; an anonymous client resuming
  // the same client id must not receive it (alice, resuming later, would have).
  const alice = await RawClient.connect(port, 4);
  assert.equal((await alice.handshake({ clientId: 'shared-id', clean: false, username: 'alice', password: Buffer.from('alice-pw') })).returnCode, 0);
  alice.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alice/#', qos: 1 }] });
  await alice.next('suback');
  alice.end();
  await alice.closedPromise;
  await watcher.publish('alice/private', 'for alice only', 1);
  await until(() => (n.broker.sessions.get('shared-id')?.queueLength ?? 0) > 0, 'queued for the offline session');
  const anon = await RawClient.connect(port, 4);
  const ack = await anon.handshake({ clientId: 'shared-id', clean: false });
  assert.equal(ack.returnCode, 0);
  assert.equal(ack.sessionPresent, true);
  assert.ok(await anon.nothingWithin(300), `anonymous received ${JSON.stringify(anon.pending())}`);
  assert.equal(n.broker.stats.dropped['not_authorized'], 1, 'the queued message was dropped');
  assert.equal(n.broker.sessions.get('shared-id')?.queueLength, 0);
  anon.end();
  await watcher.end();
});

async function until(cond: () => boolean, label: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${label}`);
    await sleep(10);
  }
}
