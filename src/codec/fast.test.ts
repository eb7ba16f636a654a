/**
 * The hand-written fast path (fast-decode.ts, fast-encode.ts) against mqtt-packet, property-based
 * (hot packets here include CONNECT, decoded by hand without properties)
 * (fast-check, fixed seeds so failures reproduce):
 *   - random valid hot packets in 3.1, 3.1.1 and 5.0 decode to the same objects (fields, values,
 *     key order) through the fast path and through mqtt-packet, and the fast path does handle
 *     them (no silent fallback);
 *   - random mutations of such packets are accepted or refused identically, with the same reason
 *     code, whole and at random splits;
 *   - the encoders give the bytes mqtt-packet's generate gives (or throw when it throws);
 * and the process-wide sharing of the mqtt-packet parser between connections.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { Decoder, decodeFrame, encode, encodePublish, type DecodeError, type Packet, type ProtocolVersionNumber } from './codec.js';
import { decodeFast } from './fast-decode.js';
import { VIEW_PIN_SLACK } from './framer.js';
import { RC } from './reason-codes.js';

type Version = ProtocolVersionNumber;
const VERSIONS: Version[] = [3, 4, 5];
const MiB = 1024 * 1024;
const RUNS = Math.max(1, Number(process.env.SKEIN_FUZZ_SCALE ?? 1) || 1);
const cfg = (seed: number, numRuns: number) => ({ seed, numRuns: numRuns * RUNS });

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function isError(r: Packet | DecodeError): r is DecodeError {
  return (r as DecodeError).reasonCode !== undefined && (r as Packet).cmd === undefined;
}

/** Same packet: same keys in the same order, deep-equal values (nested prototypes included). */
function assertSamePacket(fast: Packet, slow: Packet, context: string): void {
  assert.deepStrictEqual(Object.keys(fast), Object.keys(slow), `key order: ${context}`);
  // mqtt-packet's packets are instances of its Packet class; the fast path's are plain objects.
  assert.deepStrictEqual({ ...fast }, { ...slow }, context);
}

function assertSameOutcome(fast: Packet | DecodeError, slow: Packet | DecodeError, context: string): void {
  if (isError(slow)) {
    assert.ok(isError(fast), `mqtt-packet refuses (${slow.message}), the fast path accepts: ${context} -> ${JSON.stringify(fast)}`);
    assert.equal(fast.reasonCode, slow.reasonCode, `reason code: ${context} (${fast.message} / ${slow.message})`);
  } else {
    assert.ok(!isError(fast), `mqtt-packet accepts, the fast path refuses (${(fast as DecodeError).message}): ${context}`);
    assertSamePacket(fast, slow, context);
  }
}

function remainingLength(frame: Buffer): number {
  let n = 0;
  for (let i = 1, mul = 1; i < 5; i++, mul *= 128) {
    n += (frame[i]! & 0x7f) * mul;
    if ((frame[i]! & 0x80) === 0) break;
  }
  return n;
}

function generate(p: Packet, v: Version): Buffer {
  return mqttPacket.generate(p, { protocolVersion: v });
}

// --------------------------------------------------------------------------------- arbitraries

const safeString = (maxLength: number) => fc.string({ unit: 'binary', maxLength }).filter((s) => !s.includes('\u0000'));
const topicArb = fc.oneof(
  fc.constantFrom('a/b', 'sensors/room-12/temp', '', '\uFEFFbom', 'é/ü/€/😀', '$SYS/broker/load', 'x'.repeat(200)),
  safeString(40),
);
const bytesArb = (maxLength: number) => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));
const messageIdArb = fc.oneof(fc.constantFrom(0, 1, 65535), fc.integer({ min: 0, max: 65535 }));
const userPropsArb = fc.dictionary(
  fc.constantFrom('k', 'trace', 'x', '', 'é'),
  fc.oneof(fc.constantFrom('v', '1', '', 'ü'), fc.array(fc.constantFrom('a', 'b', ''), { minLength: 1, maxLength: 3 })),
  { minKeys: 1, maxKeys: 3 },
);
const varIntArb = fc.oneof(fc.constantFrom(0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 0x0fffffff), fc.integer({ min: 0, max: 0x0fffffff }));

/** Random key order: decoding keeps the wire order, which is the encoder's for...in order. */
function shuffled<T extends object>(arb: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return arb.chain((o) => {
    const keys = Object.keys(o);
    return fc.shuffledSubarray(keys, { minLength: keys.length, maxLength: keys.length }).map((ks) => Object.fromEntries(ks.map((k) => [k, (o as Record<string, unknown>)[k]])) as T);
  });
}

/** The properties the fast path decodes itself (each at most once, but for the repeatable ones). */
const publishPropsArb = shuffled(
  fc.record(
    {
      payloadFormatIndicator: fc.boolean(),
      messageExpiryInterval: fc.oneof(fc.constantFrom(0, 1, 0xffffffff), fc.nat()),
      contentType: safeString(20),
      responseTopic: topicArb,
      correlationData: bytesArb(40),
      subscriptionIdentifier: fc.oneof(varIntArb, fc.array(varIntArb, { minLength: 1, maxLength: 3 })),
      topicAlias: fc.integer({ min: 0, max: 65535 }),
      userProperties: userPropsArb,
    },
    { requiredKeys: [] },
  ),
);

/** Properties a PUBLISH should not carry (mqtt-packet encodes and decodes them anyway): fallback. */
const foreignPropsArb = fc.record(
  { sessionExpiryInterval: fc.nat(), reasonString: safeString(10), serverReference: safeString(10), receiveMaximum: fc.integer({ min: 0, max: 65535 }) },
  { requiredKeys: [] },
);

function publishArb(v: Version, props: fc.Arbitrary<Record<string, unknown> | undefined>): fc.Arbitrary<Packet> {
  return fc
    .record({ topic: topicArb, payload: fc.oneof(bytesArb(64), bytesArb(300)), qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(), dup: fc.boolean(), messageId: messageIdArb, properties: v === 5 ? props : fc.constant(undefined) })
    .map((r) => {
      const p: Record<string, unknown> = { cmd: 'publish', topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain, dup: r.dup };
      if (r.qos > 0) p.messageId = r.messageId;
      if (r.properties !== undefined) p.properties = r.properties;
      return p as unknown as Packet;
    });
}

const ACK_CMDS = ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const;
const PUBACK_CODES = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES = [0x00, 0x92];
const DISCONNECT_CODES = [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2];

function ackArb(v: Version, withProps: boolean): fc.Arbitrary<Packet> {
  return fc.constantFrom(...ACK_CMDS).chain((cmd) =>
    fc
      .record({
        messageId: messageIdArb,
        reasonCode: fc.option(fc.constantFrom(...(cmd === 'puback' || cmd === 'pubrec' ? PUBACK_CODES : PUBREL_CODES)), { nil: undefined }),
        properties: withProps ? fc.option(fc.record({ reasonString: safeString(20), userProperties: userPropsArb }, { requiredKeys: [] }), { nil: undefined }) : fc.constant(undefined),
      })
      .map((r) => {
        const p: Record<string, unknown> = { cmd, messageId: r.messageId };
        if (v === 5 && r.reasonCode !== undefined) p.reasonCode = r.reasonCode;
        if (v === 5 && r.properties !== undefined) p.properties = r.properties;
        return p as unknown as Packet;
      }),
  );
}

function disconnectArb(v: Version, withProps: boolean): fc.Arbitrary<Packet> {
  if (v !== 5) return fc.constant({ cmd: 'disconnect' } as unknown as Packet);
  return fc
    .record({
      reasonCode: fc.constantFrom(...DISCONNECT_CODES),
      properties: withProps ? fc.option(fc.record({ reasonString: safeString(10), sessionExpiryInterval: fc.nat(), serverReference: safeString(10), userProperties: userPropsArb }, { requiredKeys: [] }), { nil: undefined }) : fc.constant(undefined),
    })
    .map((r) => ({ cmd: 'disconnect', reasonCode: r.reasonCode, ...(r.properties ? { properties: r.properties } : {}) }) as unknown as Packet);
}

const pingreq = fc.constant({ cmd: 'pingreq' } as unknown as Packet);

/** CONNECT in version v; with `props`, 5.0 properties in the variable header and the will too. */
function connectArb(v: Version, props: boolean): fc.Arbitrary<Packet> {
  return fc
    .record({
      clientId: fc.oneof(fc.constantFrom('', 'lg-123-4', 'é-client'), safeString(23)),
      clean: fc.boolean(),
      keepalive: fc.oneof(fc.constantFrom(0, 60, 65535), fc.integer({ min: 0, max: 65535 })),
      will: fc.option(fc.record({ topic: topicArb.filter((t) => t !== ''), payload: bytesArb(40), qos: fc.constantFrom(0, 1, 2), retain: fc.boolean() }), { nil: undefined }),
      username: fc.option(safeString(12), { nil: undefined }),
      password: fc.option(bytesArb(12), { nil: undefined }),
    })
    .map((r) => {
      // mqtt-packet writes no empty Client Identifier in 3.1, nor with a persistent session.
      const clientId = r.clientId === '' && (v === 3 || !r.clean) ? 'c' : r.clientId;
      const p: Record<string, unknown> = { cmd: 'connect', protocolId: v === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: v, clientId, clean: r.clean, keepalive: r.keepalive };
      if (r.will) p.will = props && v === 5 ? { ...r.will, properties: { willDelayInterval: 5, contentType: 'text/plain' } } : r.will;
      // mqtt-packet writes no password without a user name (3.1.1 [MQTT-3.1.2-22]; in 5.0 too):
      // that form reaches the decoders through the mutation tests.
      if (r.username !== undefined) p.username = r.username;
      if (r.password !== undefined && r.username !== undefined) p.password = r.password;
      if (props && v === 5) p.properties = { sessionExpiryInterval: 300, receiveMaximum: 10, userProperties: { k: 'v' } };
      return p as unknown as Packet;
    });
}

/** Hot packets in the forms the fast path decodes completely. */
function coreArb(v: Version): fc.Arbitrary<Packet> {
  return fc.oneof(
    { weight: 4, arbitrary: publishArb(v, fc.option(publishPropsArb, { nil: undefined })) },
    { weight: 2, arbitrary: ackArb(v, false) },
    { weight: 1, arbitrary: pingreq },
    { weight: 1, arbitrary: disconnectArb(v, false) },
    { weight: 1, arbitrary: connectArb(v, false) },
  );
}

/** Any hot packet, including the forms left to mqtt-packet (ack/DISCONNECT properties, foreign PUBLISH properties). */
function hotArb(v: Version): fc.Arbitrary<Packet> {
  return fc.oneof(coreArb(v), publishArb(v, foreignPropsArb), ackArb(v, true), disconnectArb(v, true), connectArb(v, true));
}

/** Frames mqtt-packet's generate never writes, but accepts. */
const ODD_FRAMES: Array<[Version, number[]]> = [
  [5, [0x40, 0x03, 0x00, 0x07, 0x10]], // ack Reason Code without Property Length
  [5, [0x62, 0x03, 0x00, 0x07, 0x92]],
  [5, [0xe0, 0x01, 0x04]], // DISCONNECT Reason Code without Property Length
  [5, [0x30, 0x05, 0x00, 0x03, 0x61, 0x2f, 0x62]], // PUBLISH without a Property Length at all
  [5, [0x30, 0x08, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x80, 0x00, 0x68]], // Property Length 0 in two bytes
  [5, [0x30, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x80, 0x80]], // Property Length cut off
  [5, [0x30, 0x0b, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x80, 0x80, 0x80, 0x80, 0x00, 0x68]], // Property Length of five bytes [MQTT-1.5.5-1]
  [5, [0x30, 0x0a, 0x00, 0x01, 0x61, 0x06, 0x0b, 0x80, 0x80, 0x80, 0x80, 0x00]], // Subscription Identifier of five bytes
  [5, [0x30, 0x08, 0x00, 0x01, 0x61, 0x04, 0x01, 0x01, 0x01, 0x00]], // Payload Format Indicator twice
  [5, [0x30, 0x08, 0x00, 0x01, 0x61, 0x04, 0x01, 0x00, 0x01, 0x01]], // ... first 0
  [5, [0x30, 0x0c, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x01, 0x02, 0x00, 0x00, 0x00, 0x3c, 0x68]], // property overruns into payload
  [5, [0x30, 0x0a, 0x00, 0x01, 0x61, 0x06, 0x23, 0x00, 0x00, 0x23, 0x00, 0x05]], // Topic Alias 0 then 5
  [5, [0x30, 0x0a, 0x00, 0x01, 0x61, 0x06, 0x0b, 0x00, 0x0b, 0x05, 0x0b, 0x07]], // Subscription Identifier 0, 5, 7
  [4, [0x40, 0x05, 0x00, 0x01, 0xaa, 0xbb, 0xcc]], // 3.1.1 ack with trailing bytes
  [4, [0xc0, 0x01, 0x00]], // PINGREQ with a body
  [4, [0xe0, 0x02, 0x00, 0x00]], // 3.1.1 DISCONNECT with a body
  [4, [0x30, 0x02, 0x00, 0x00]], // empty topic, empty payload
  [4, [0x40, 0x00]], // PUBACK without Packet Identifier
  [5, [0x50, 0x01, 0x00]],
  [4, [0x32, 0x04, 0x00, 0x01, 0x61, 0x00]], // QoS 1 PUBLISH with half a Packet Identifier
  [5, [0x32, 0x04, 0x00, 0x01, 0x61, 0x00]],
  [5, [0x32, 0x03, 0x00, 0x01, 0x61]],
  [4, [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]], // QoS 3 [MQTT-3.3.1-4]
  [4, [0x60, 0x02, 0x00, 0x01]], // PUBREL flags 0000 [MQTT-3.6.1-1]
  [5, [0x63, 0x02, 0x00, 0x01]],
  [4, [0x41, 0x02, 0x00, 0x01]], // PUBACK reserved flag [MQTT-2.2.2-1]
  [4, [0xc2, 0x00]],
  [5, [0xe1, 0x00]],
  [4, [0x30, 0x03, 0x00, 0x05, 0x61]], // topic length past the end
  [4, [0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x61]], // ill-formed UTF-8 [MQTT-1.5.4-1]
  [4, [0x30, 0x05, 0x00, 0x02, 0xed, 0xa0, 0x80]], // UTF-8 encoded surrogate
  [4, [0x30, 0x04, 0x00, 0x02, 0x61, 0x00]], // U+0000 [MQTT-1.5.4-2]
  [4, [0x30, 0x06, 0x00, 0x03, 0xef, 0xbb, 0xbf, 0x61]], // BOM kept [MQTT-1.5.4-3]
  [5, [0x40, 0x03, 0x00, 0x01, 0x05]], // invalid PUBACK reason code
  [5, [0x70, 0x03, 0x00, 0x01, 0x10]], // 0x10 is not a PUBCOMP reason code
  [5, [0xe0, 0x01, 0x05]], // invalid DISCONNECT reason code
  [5, [0x30, 0x09, 0x00, 0x01, 0x61, 0x04, 0x03, 0x00, 0x01, 0x00, 0x62]], // U+0000 in Content Type
  [5, [0x30, 0x0a, 0x00, 0x01, 0x61, 0x05, 0x26, 0x00, 0x01, 0x6b, 0x00, 0x62]], // User Property cut short
  // CONNECT forms the fast path leaves to mqtt-packet, or decodes where generate writes none.
  [4, [0x10, 0x0e, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61, 0xaa]], // a byte after the last field
  [5, [0x10, 0x11, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x42, 0x00, 0x3c, 0x00, 0x00, 0x01, 0x61, 0x00, 0x01, 0x70]], // 5.0 password without user name
  [4, [0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x84, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]], // bridge bit in the protocol level
  [4, [0x10, 0x0f, 0x00, 0x06, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]], // "MQIsdp" at level 4
  [4, [0x10, 0x12, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x1e, 0x00, 0x3c, 0x00, 0x01, 0x61, 0x00, 0x01, 0x74, 0x00, 0x00]], // Will QoS 3
  [4, [0x10, 0x0e, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 0xc3, 0x28]], // ill-formed UTF-8 Client Identifier
  [4, [0x11, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x61]], // reserved header flag
];

/** Variable Byte Integer [MQTT-1.5.5]. */
function vbi(n: number): number[] {
  const out: number[] = [];
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    out.push(d);
  } while (n > 0);
  return out;
}

/** Wire bytes of one 5.0 property, valid on its own; a list of them may repeat any. */
const str = (t: string) => {
  const b = Buffer.from(t, 'utf8');
  return [b.length >> 8, b.length & 0xff, ...b];
};
const rawPropertyArb: fc.Arbitrary<number[]> = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((b) => [0x01, b]), // Payload Format Indicator (any byte)
  fc.oneof(fc.constantFrom(0, 0xffffffff), fc.nat()).map((n) => [0x02, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]),
  safeString(8).map((t) => [0x03, ...str(t)]),
  safeString(8).map((t) => [0x08, ...str(t)]),
  bytesArb(8).map((b) => [0x09, b.length >> 8, b.length & 0xff, ...b]),
  fc.constantFrom(0, 1, 5, 127, 128, 300, 0x0fffffff).map((n) => [0x0b, ...vbi(n)]),
  fc.constantFrom(0, 1, 7, 65535).map((n) => [0x23, n >> 8, n & 0xff]),
  fc.tuple(fc.constantFrom('k', '', 'x'), fc.constantFrom('v', '', 'w')).map(([k, v]) => [0x26, ...str(k), ...str(v)]),
  fc.constant<number[]>([0x11, 0, 0, 0, 5]), // Session Expiry Interval: not a PUBLISH property
  safeString(5).map((t) => [0x1f, ...str(t)]), // Reason String: neither
);

/** A 5.0 PUBLISH with any list of (valid, possibly repeated) properties. */
const rawPublishArb = fc
  .record({ qos: fc.constantFrom(0, 1, 2), topic: topicArb, props: fc.array(rawPropertyArb, { maxLength: 6 }), payload: bytesArb(8) })
  .map(({ qos, topic, props, payload }) => {
    const list = props.flat();
    return reframe(0x30 | (qos << 1), Buffer.from([...str(topic), ...(qos > 0 ? [0x12, 0x34] : []), ...vbi(list.length), ...list, ...payload]));
  });

// --------------------------------------------------------------------------------- mutations

type Mutation =
  | { kind: 'flip'; pos: number; bit: number }
  | { kind: 'set'; pos: number; value: number }
  | { kind: 'insert'; pos: number; bytes: Uint8Array }
  | { kind: 'delete'; pos: number; len: number }
  | { kind: 'truncate'; pos: number };

const posArb = fc.nat({ max: 4096 });
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), pos: posArb, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), pos: posArb, value: fc.constantFrom(0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x7f, 0x80, 0xc0, 0xff, 0x26, 0x0b, 0x23) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), pos: posArb, bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pos: posArb, len: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), pos: posArb }) },
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

/** A packet with `body` after a fixed header whose first byte is `b0` (Remaining Length recomputed). */
function reframe(b0: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([b0, ...vbi(body.length)]), body]);
}

interface Trace {
  packets: Packet[];
  errors: DecodeError[];
}

function run(chunks: Buffer[], version: Version, fastPath: boolean, maxPacketSize = MiB): Trace {
  const t: Trace = { packets: [], errors: [] };
  const d = new Decoder({ packet: (p) => t.packets.push(p), error: (e) => t.errors.push(e) }, maxPacketSize, { fastPath });
  d.protocolVersion = version;
  for (const c of chunks) d.push(c);
  return t;
}

function splitAt(b: Buffer, cuts: number[]): Buffer[] {
  if (b.length === 0) return [b];
  const points = [...new Set(cuts.map((c) => c % b.length))].filter((c) => c > 0).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

function assertSameTrace(fast: Trace, slow: Trace, context: string): void {
  assert.equal(fast.packets.length, slow.packets.length, `packet count: ${context}; errors ${JSON.stringify(fast.errors)} / ${JSON.stringify(slow.errors)}`);
  for (let i = 0; i < slow.packets.length; i++) assertSamePacket(fast.packets[i]!, slow.packets[i]!, `${context} packet ${i}`);
  assert.equal(fast.errors.length, slow.errors.length, `error count: ${context}; ${JSON.stringify(fast.errors)} / ${JSON.stringify(slow.errors)}`);
  if (slow.errors.length > 0) assert.equal(fast.errors[0]!.reasonCode, slow.errors[0]!.reasonCode, `reason code: ${context}; ${fast.errors[0]!.message} / ${slow.errors[0]!.message}`);
}

// ------------------------------------------------------------------------------------ decoding

describe('fast decoder vs mqtt-packet', () => {
  for (const v of VERSIONS) {
    test(`${v}: random valid hot packets decode to the same objects, and the fast path handles them itself`, () => {
      fc.assert(
        fc.property(coreArb(v), (p) => {
          const bytes = generate(p, v);
          // Inside a larger chunk, as the framer hands it over: positions are absolute.
          const chunk = Buffer.concat([Buffer.from([0x30, 0xff, 0x00]), bytes, Buffer.from([0xe0])]);
          const fast = decodeFast(chunk, 3, bytes.length, remainingLength(bytes), v);
          assert.ok(fast !== undefined && typeof fast !== 'string', `fast path did not decode ${hex(bytes)}: ${String(fast)}`);
          const slow = decodeFrame(bytes, v, { fastPath: false });
          assertSameOutcome(fast, slow, hex(bytes));
          assertSameOutcome(decodeFrame(bytes, v), slow, hex(bytes));
        }),
        cfg(0xfa57 + v, 1500),
      );
    });

    test(`${v}: hot packets in forms left to mqtt-packet (properties on acks and DISCONNECT, foreign properties) decode the same`, () => {
      fc.assert(
        fc.property(hotArb(v), (p) => {
          const bytes = generate(p, v);
          if (bytes.length === 0) return; // mqtt-packet writes nothing for some inputs
          assertSameOutcome(decodeFrame(bytes, v), decodeFrame(bytes, v, { fastPath: false }), hex(bytes));
        }),
        cfg(0xfa67 + v, 800),
      );
    });

    test(`${v}: random mutations of hot packet streams are accepted or refused identically (whole and split)`, () => {
      fc.assert(
        fc.property(fc.array(hotArb(v), { minLength: 1, maxLength: 4 }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }), fc.constantFrom(64, MiB), (packets, muts, cuts, max) => {
          const stream = Buffer.concat(packets.map((p) => generate(p, v)));
          const m = mutate(stream, muts);
          assertSameTrace(run([m], v, true, max), run([m], v, false, max), hex(m));
          assertSameTrace(run(splitAt(m, cuts), v, true, max), run(splitAt(m, cuts), v, false, max), `${hex(m)} split at ${cuts.join(',')}`);
        }),
        cfg(0xfa77 + v, 2500),
      );
    });

    test(`${v}: random mutations of a hot packet's body (Remaining Length kept consistent) are accepted or refused identically`, () => {
      fc.assert(
        fc.property(coreArb(v), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fc.option(fc.nat({ max: 15 }), { nil: undefined }), (p, muts, flags) => {
          const bytes = generate(p, v);
          const body = mutate(bytes.subarray(bytes.length - remainingLength(bytes)), muts);
          const b0 = flags === undefined ? bytes[0]! : (bytes[0]! & 0xf0) | flags;
          const frame = reframe(b0, body);
          assertSameOutcome(decodeFrame(frame, v), decodeFrame(frame, v, { fastPath: false }), hex(frame));
        }),
        cfg(0xfa87 + v, 3000),
      );
    });
  }

  test('a connection publishing to the same topic again gets the same string; any other bytes, their own (TopicMemo)', () => {
    const pub = (topic: string | Buffer) => {
      const t = Buffer.isBuffer(topic) ? topic : Buffer.from(topic);
      return reframe(0x30, Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t, Buffer.from('p')]));
    };
    // Same byte lengths throughout: 'é' is 2 bytes like 'ab'; 'a\u0000' is refused.
    const topics: Array<string | Buffer> = ['a/b', 'a/b', 'a/c', 'a/b', 'ab', 'é', 'ab', 'é', Buffer.from([0x61, 0x00]), 'ab', 'a/b'];
    const t = run([Buffer.concat(topics.map(pub))], 4, true);
    const slow = run([Buffer.concat(topics.map(pub))], 4, false);
    const got = t.packets.map((p) => (p as { topic: string }).topic);
    assert.deepEqual(got, ['a/b', 'a/b', 'a/c', 'a/b', 'ab', 'é', 'ab', 'é']);
    assert.deepEqual(slow.packets.map((p) => (p as { topic: string }).topic), got);
    assert.equal(t.errors.length, 1, 'U+0000 refused [MQTT-1.5.4-2]');
    assert.equal(t.errors[0]!.reasonCode, slow.errors[0]!.reasonCode);
    // The decoder keeps the last ASCII topic (JavaScript cannot tell two equal strings apart, so
    // that it hands out the same one is seen in profiles, not here); non-ASCII ones are not kept.
    const seen: string[] = [];
    const d = new Decoder({ packet: (p) => seen.push((p as { topic: string }).topic), error: () => undefined }, MiB);
    d.push(Buffer.concat([pub('sensors/1/temp'), pub('sensors/1/temp')]));
    assert.deepEqual(seen, ['sensors/1/temp', 'sensors/1/temp']);
    assert.equal(d.lastTopic, 'sensors/1/temp');
    d.push(pub('é/ü'));
    assert.equal(d.lastTopic, 'sensors/1/temp');
  });

  test('odd but possible frames: same outcome (accepted by both, or refused with the same reason code)', () => {
    for (const [v, bytes] of ODD_FRAMES) {
      const frame = Buffer.from(bytes);
      assert.equal(frame.length, 1 + vbi(remainingLength(frame)).length + remainingLength(frame), `a whole frame: ${hex(frame)}`);
      assertSameOutcome(decodeFrame(frame, v), decodeFrame(frame, v, { fastPath: false }), `v${v} ${hex(frame)}`);
    }
  });

  test('5.0 PUBLISH with any list of properties, repeated or not, PUBLISH ones or not: same outcome', () => {
    fc.assert(
      fc.property(rawPublishArb, fc.array(mutationArb, { maxLength: 2 }), (frame, muts) => {
        const m = muts.length === 0 ? frame : reframe(frame[0]!, mutate(frame.subarray(frame.length - remainingLength(frame)), muts));
        assertSameOutcome(decodeFrame(m, 5), decodeFrame(m, 5, { fastPath: false }), hex(m));
      }),
      cfg(0xfa97, 3000),
    );
  });

  test('[MQTT-3.3.1-4] QoS 3, [MQTT-3.6.1-1] PUBREL flags, [MQTT-2.2.2-1] reserved flags: refused by the fast path itself as Malformed Packet', () => {
    for (const [v, bytes] of [
      [4, [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]],
      [5, [0x36, 0x06, 0x00, 0x01, 0x61, 0x00, 0x01, 0x00]],
      [4, [0x60, 0x02, 0x00, 0x01]],
      [5, [0x6a, 0x02, 0x00, 0x01]],
      [4, [0x42, 0x02, 0x00, 0x01]],
      [5, [0x78, 0x02, 0x00, 0x01]],
      [4, [0xc4, 0x00]],
      [5, [0xe8, 0x00]],
    ] as Array<[Version, number[]]>) {
      const frame = Buffer.from(bytes);
      const r = decodeFast(frame, 0, frame.length, remainingLength(frame), v);
      assert.equal(typeof r, 'string', hex(frame));
      const d = decodeFrame(frame, v);
      assert.ok(isError(d) && d.reasonCode === RC.MalformedPacket, hex(frame));
    }
  });

  test('[MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-1.5.4-3] topic names: ill-formed UTF-8 and U+0000 refused, a BOM kept', () => {
    for (const [bytes, ok] of [
      [[0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x61], false],
      [[0x30, 0x06, 0x00, 0x03, 0xed, 0xa0, 0x80, 0x61], false], // encoded surrogate
      [[0x30, 0x05, 0x00, 0x02, 0xc0, 0x80, 0x61], false], // overlong U+0000
      [[0x30, 0x04, 0x00, 0x02, 0x61, 0x00], false],
      [[0x30, 0x06, 0x00, 0x03, 0xef, 0xbb, 0xbf, 0x61], true],
    ] as Array<[number[], boolean]>) {
      const frame = Buffer.from(bytes);
      const d = decodeFrame(frame, 4);
      if (ok) assert.equal((d as { topic: string }).topic, '\uFEFF', hex(frame));
      else assert.ok(isError(d) && d.reasonCode === RC.MalformedPacket, hex(frame));
    }
  });

  test('a Packet Identifier cut off by the end of the packet is a Malformed Packet in both paths (mqtt-packet alone read it as -1)', () => {
    for (const [v, bytes] of [
      [4, [0x32, 0x03, 0x00, 0x01, 0x61]],
      [4, [0x32, 0x04, 0x00, 0x01, 0x61, 0x00]],
      [5, [0x34, 0x04, 0x00, 0x01, 0x61, 0x00]],
      [4, [0x40, 0x00]],
      [5, [0x50, 0x01, 0x07]],
      [5, [0x62, 0x00]],
      [3, [0x70, 0x01, 0x00]],
    ] as Array<[Version, number[]]>) {
      for (const fastPath of [true, false]) {
        const d = decodeFrame(Buffer.from(bytes), v, { fastPath });
        assert.ok(isError(d) && d.reasonCode === RC.MalformedPacket, `${hex(Buffer.from(bytes))} fastPath=${fastPath}: ${JSON.stringify(d)}`);
      }
    }
  });

  test('bytes that will be kept do not pin the read: a QoS 1/2 or retained payload and its Correlation Data, a will payload, are copied out of a large chunk, other bytes stay views (both decoders)', () => {
    type Pub = { payload: Buffer; properties?: { correlationData?: Buffer } };
    const publish = (qos: 0 | 1 | 2, retain: boolean) =>
      generate({ cmd: 'publish', topic: 't', payload: Buffer.from('hello'), qos, messageId: qos ? 3 : undefined, retain, dup: false, properties: { correlationData: Buffer.from([1, 2]) } } as Packet, 5);
    const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'c', will: { topic: 'w', payload: Buffer.from('gone'), qos: 1, retain: false } } as Packet, 4);
    /** `frame` at the start of a chunk of its own (as a socket read is) of `size` bytes. */
    const inChunk = (frame: Buffer, size: number) => {
      const chunk = Buffer.alloc(size);
      frame.copy(chunk);
      return chunk.subarray(0, frame.length);
    };
    const decode = (frame: Buffer, v: ProtocolVersionNumber, fastPath: boolean) => decodeFrame(frame, v, { fastPath }) as unknown as Pub & { will?: { payload: Buffer } };
    const big = 64 * 1024;
    for (const fastPath of [true, false]) {
      const at = `fastPath=${fastPath}`;
      for (const [qos, retain] of [[1, false], [2, false], [0, true]] as const) {
        const frame = inChunk(publish(qos, retain), big);
        const p = decode(frame, 5, fastPath);
        assert.equal(p.payload.toString(), 'hello');
        assert.notEqual(p.payload.buffer, frame.buffer, `QoS ${qos} retain ${retain}: payload copied, ${at}`);
        assert.ok(p.payload.buffer.byteLength <= p.payload.length + VIEW_PIN_SLACK, at);
        assert.deepEqual([...p.properties!.correlationData!], [1, 2]);
        assert.notEqual(p.properties!.correlationData!.buffer, frame.buffer, `correlation data copied, ${at}`);
      }
      // QoS 0, not retained: delivered at once, not kept; a view.
      const q0 = inChunk(publish(0, false), big);
      assert.equal(decode(q0, 5, fastPath).payload.buffer, q0.buffer, `QoS 0 payload is a view, ${at}`);
      // In a chunk within the slack (a read slab), kept bytes stay views too: no copy needed.
      const small = inChunk(publish(1, false), VIEW_PIN_SLACK);
      const ps = decode(small, 5, fastPath);
      assert.equal(ps.payload.buffer, small.buffer, `payload in a small chunk is a view, ${at}`);
      assert.equal(ps.properties!.correlationData!.buffer, small.buffer, at);
      // A will is kept for the session.
      const c = inChunk(connect, big);
      const will = decode(c, 4, fastPath).will!.payload;
      assert.equal(will.toString(), 'gone');
      assert.notEqual(will.buffer, c.buffer, `will payload copied, ${at}`);
    }
  });
});

// ------------------------------------------------------------------------------------ encoding

/** encode() as it was before the fast path: mqtt-packet after the 5.0 short-form ack rule. */
function legacyEncode(packet: Packet, v: Version): Buffer {
  const p = packet as Packet & { reasonCode?: number; properties?: object };
  if (v === 5 && (p.cmd === 'puback' || p.cmd === 'pubrec' || p.cmd === 'pubrel' || p.cmd === 'pubcomp') && p.reasonCode === undefined && p.properties === undefined) {
    return mqttPacket.generate({ ...p, reasonCode: 0 } as Packet, { protocolVersion: v });
  }
  return mqttPacket.generate(packet, { protocolVersion: v });
}

/** Same bytes, or both throw. */
function assertSameEncoding(fast: () => Buffer, reference: () => Buffer, context: () => string): void {
  let want: string | undefined;
  let wantError: unknown;
  try {
    want = hex(reference());
  } catch (err) {
    wantError = err;
  }
  let got: string | undefined;
  let gotError: unknown;
  try {
    got = hex(fast());
  } catch (err) {
    gotError = err;
  }
  if (wantError !== undefined) assert.ok(gotError !== undefined, `mqtt-packet throws (${(wantError as Error).message}), the fast encoder gives ${got}: ${context()}`);
  else {
    assert.equal(gotError, undefined, `the fast encoder throws: ${context()}`);
    assert.equal(got, want, context());
  }
}

const weird = fc.constantFrom<unknown>(undefined, null, -1, 1.5, 70000, 2 ** 32, 'str', true, [], {}, Buffer.from('x'), 0);
const unusualPropsArb = fc.oneof(
  fc.constantFrom<unknown>(undefined, null, [], {}, { userProperties: {} }, { subscriptionIdentifier: [] }, { topicAlias: undefined }, Object.create({ topicAlias: 1 }) as unknown, { userProperties: { k: [] } }, { userProperties: { k: 5 } }),
  fc.constant<unknown>({ sessionExpiryInterval: 5 }),
  fc.tuple(fc.constantFrom('payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'subscriptionIdentifier', 'topicAlias', 'userProperties', 'reasonString'), weird).map(([k, v]) => ({ [k]: v })),
  fc.constant({ reasonString: 'why', userProperties: { a: 'b' } }),
);

function unusualPublishArb(): fc.Arbitrary<Packet> {
  return fc
    .record({
      topic: fc.oneof(topicArb, fc.constant(Buffer.from('a/b') as unknown as string), fc.constant(undefined as unknown as string)),
      payload: fc.oneof(bytesArb(40), safeString(20), fc.constantFrom<unknown>(undefined, null, '', 0, new Uint8Array([1, 2]))),
      qos: fc.constantFrom<unknown>(0, 1, 2, undefined, 3, '1'),
      retain: fc.constantFrom<unknown>(true, false, 1, undefined),
      dup: fc.constantFrom<unknown>(true, false, undefined),
      messageId: fc.oneof(messageIdArb, weird),
      properties: fc.oneof(publishPropsArb as fc.Arbitrary<unknown>, unusualPropsArb),
    })
    .map((r) => ({ cmd: 'publish', ...r }) as unknown as Packet);
}

function unusualAckArb(): fc.Arbitrary<Packet> {
  return fc
    .record({
      cmd: fc.constantFrom(...ACK_CMDS),
      messageId: fc.oneof(messageIdArb, weird),
      reasonCode: fc.oneof(fc.constantFrom(...PUBACK_CODES, ...PUBREL_CODES), weird),
      properties: fc.oneof(fc.record({ reasonString: safeString(20), userProperties: userPropsArb }, { requiredKeys: [] }) as fc.Arbitrary<unknown>, unusualPropsArb),
      dup: fc.constantFrom<unknown>(true, false, undefined),
    })
    .map((r) => r as unknown as Packet);
}

describe('fast encoders vs mqtt-packet generate', () => {
  for (const v of VERSIONS) {
    test(`${v}: encode() of random hot packets gives mqtt-packet's bytes`, () => {
      fc.assert(
        fc.property(fc.oneof(hotArb(v), fc.constant({ cmd: 'pingresp' } as unknown as Packet)), (p) => {
          assertSameEncoding(() => encode(p, v), () => legacyEncode(p, v), () => JSON.stringify(p));
        }),
        cfg(0xe0c0 + v, 1500),
      );
    });

    test(`${v}: encode() of unusual packets gives mqtt-packet's bytes, or throws when it throws`, () => {
      fc.assert(
        fc.property(fc.oneof(unusualPublishArb(), unusualAckArb()), (p) => {
          assertSameEncoding(() => encode(p, v), () => legacyEncode(p, v), () => JSON.stringify(p));
        }),
        cfg(0xe0d0 + v, 2000),
      );
    });

    test(`${v}: encodePublish in a fan-out loop (topic cache) gives mqtt-packet's bytes for every subscriber`, () => {
      const fanout = fc.record({
        topics: fc.array(fc.constantFrom('a/b', 'a/c', 'é/€', ''), { minLength: 1, maxLength: 3 }),
        subscribers: fc.array(fc.record({ qos: fc.constantFrom<0 | 1 | 2>(0, 1, 2), retain: fc.boolean(), dup: fc.boolean(), packetId: messageIdArb, properties: fc.option(publishPropsArb, { nil: undefined }) }), { minLength: 1, maxLength: 6 }),
        payload: fc.oneof(bytesArb(100), safeString(30)),
      });
      fc.assert(
        fc.property(fanout, ({ topics, subscribers, payload }) => {
          for (const topic of topics) {
            for (const s of subscribers) {
              const packetId = s.qos > 0 ? s.packetId : undefined;
              assertSameEncoding(
                () => encodePublish(topic, payload, s.qos, s.retain, s.dup, packetId, v, s.properties),
                () => mqttPacket.generate({ cmd: 'publish', topic, payload, qos: s.qos, retain: s.retain, dup: s.dup, messageId: packetId, properties: s.properties } as Packet, { protocolVersion: v }),
                () => JSON.stringify({ topic, s }),
              );
            }
          }
        }),
        cfg(0xe0e0 + v, 500),
      );
    });
  }

  test('3.1 / 3.1.1 CONNACK: the fixed four bytes, as mqtt-packet writes them', () => {
    for (const v of [3, 4] as const) {
      for (const sessionPresent of [false, true]) {
        for (const returnCode of [0, 1, 2, 3, 4, 5]) {
          const p = { cmd: 'connack', sessionPresent, returnCode } as Packet;
          assert.equal(hex(encode(p, v)), hex(legacyEncode(p, v)), JSON.stringify(p));
        }
      }
    }
    assert.equal(hex(encode({ cmd: 'connack', sessionPresent: true, returnCode: 0 } as Packet, 4)), '20020100');
  });

  test('PINGRESP and PINGREQ: fresh 2-byte buffers', () => {
    const a = encode({ cmd: 'pingresp' } as Packet, 4);
    const b = encode({ cmd: 'pingresp' } as Packet, 5);
    assert.equal(hex(a), 'd000');
    assert.notEqual(a, b);
    assert.equal(hex(encode({ cmd: 'pingreq' } as Packet, 4)), 'c000');
  });

  test('5.0 acks: short form for reason 0x00 without properties (5.0 §3.4.2.1), long form otherwise', () => {
    assert.equal(hex(encode({ cmd: 'puback', messageId: 7 } as Packet, 5)), '40020007');
    assert.equal(hex(encode({ cmd: 'pubrel', messageId: 7, reasonCode: 0, properties: undefined } as unknown as Packet, 5)), '62020007');
    assert.equal(hex(encode({ cmd: 'pubrec', messageId: 7, reasonCode: 0x10 } as Packet, 5)), '5004000710' + '00');
    assert.equal(hex(encode({ cmd: 'pubcomp', messageId: 7, reasonCode: 0x92, properties: { reasonString: 'x' } } as Packet, 5)), '7008000792041f000178');
  });
});

// ------------------------------------------------------------------------ shared mqtt-packet parser

describe('one mqtt-packet parser shared by all decoders', () => {
  const connect = (v: Version, clientId: string, protocolVersion = v) =>
    generate({ cmd: 'connect', protocolId: v === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clientId, clean: true, keepalive: 30 } as Packet, v);
  const subscribe = (v: Version, messageId: number, topic: string, qos: 0 | 1 | 2 = 1) =>
    generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos, ...(v === 5 ? { nl: true, rap: false, rh: 1 } : {}) }], ...(v === 5 ? { properties: { subscriptionIdentifier: messageId } } : {}) } as Packet, v);
  const unsubscribe = (v: Version, messageId: number, topic: string) => generate({ cmd: 'unsubscribe', messageId, unsubscriptions: [topic] } as Packet, v);

  function halves(b: Buffer): [Buffer, Buffer] {
    const mid = Math.max(1, b.length >> 1);
    return [b.subarray(0, mid), b.subarray(mid)];
  }

  for (const fastPath of [true, false]) {
    test(`two decoders interleaving partial packets; an error on one, the other continues (fastPath=${fastPath})`, () => {
      const a: Trace = { packets: [], errors: [] };
      const b: Trace = { packets: [], errors: [] };
      const da = new Decoder({ packet: (p) => a.packets.push(p), error: (e) => a.errors.push(e) }, MiB, { fastPath });
      const db = new Decoder({ packet: (p) => b.packets.push(p), error: (e) => b.errors.push(e) }, MiB, { fastPath });
      // A speaks 5.0, B 3.1.1: each CONNECT switches only its own decoder.
      const aStream = [connect(5, 'a'), subscribe(5, 1, 'a/#'), unsubscribe(5, 2, 'a/#')];
      const bStream = [connect(4, 'b'), subscribe(4, 1, 'b/#'), unsubscribe(4, 2, 'b/#')];
      for (let i = 0; i < aStream.length; i++) {
        const [a1, a2] = halves(aStream[i]!);
        const [b1, b2] = halves(bStream[i]!);
        da.push(a1);
        db.push(b1);
        da.push(a2);
        db.push(b2);
      }
      assert.deepEqual(a.errors, []);
      assert.deepEqual(b.errors, []);
      assert.deepEqual(a.packets.map((p) => p.cmd), ['connect', 'subscribe', 'unsubscribe']);
      assert.deepEqual(b.packets.map((p) => p.cmd), ['connect', 'subscribe', 'unsubscribe']);
      // Decoded in each connection's own version: 5.0 options and properties for A only.
      assert.deepEqual({ ...(a.packets[1] as { subscriptions: unknown[] }).subscriptions[0]! }, { topic: 'a/#', qos: 1, nl: true, rap: false, rh: 1 });
      assert.deepEqual((a.packets[1] as { properties?: object }).properties, { subscriptionIdentifier: 1 });
      assert.deepEqual({ ...(b.packets[1] as { subscriptions: unknown[] }).subscriptions[0]! }, { topic: 'b/#', qos: 1 });
      assert.equal((b.packets[1] as { properties?: object }).properties, undefined);

      // A sends half a SUBSCRIBE, B half of one; then A's turns out malformed (Requested QoS 3,
      // [MQTT-3.8.3-4]) while B's completes, then B goes on.
      const bad = Buffer.from([0x82, 0x09, 0x00, 0x03, 0x00, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x03]);
      const good = subscribe(4, 3, 'c/d', 2);
      da.push(bad.subarray(0, 5));
      db.push(good.subarray(0, 5));
      da.push(bad.subarray(5));
      const aErrors: DecodeError[] = a.errors; // (deepEqual above narrowed a.errors to never[])
      assert.equal(aErrors.length, 1);
      assert.equal(aErrors[0]!.reasonCode, RC.MalformedPacket);
      db.push(good.subarray(5));
      db.push(Buffer.concat([unsubscribe(4, 4, 'c/d'), generate({ cmd: 'publish', topic: 'e', payload: Buffer.from('x'), qos: 1, messageId: 5 } as Packet, 4), connect(4, 'again')]));
      da.push(subscribe(5, 9, 'ignored')); // A ignores everything after its error
      assert.deepEqual(b.errors, []);
      assert.deepEqual(b.packets.slice(3).map((p) => p.cmd), ['subscribe', 'unsubscribe', 'publish', 'connect']);
      assert.deepEqual({ ...(b.packets[3] as { subscriptions: unknown[] }).subscriptions[0]! }, { topic: 'c/d', qos: 2 });
      assert.equal(a.packets.length, 3);
      assert.equal(a.errors.length, 1);
    });
  }

  test('a parse error mid-packet does not leak into the next packet of another connection', () => {
    // CONNECT with a bad protocol name stops mqtt-packet half-way through the packet.
    for (const badBytes of [
      [0x10, 0x0e, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x58, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, 0x63, 0x31],
      [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x04], // reserved option bits
      [0x30, 0x08, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x02, 0x7f, 0x00], // unknown property (5.0)
    ]) {
      const bad = decodeFrame(Buffer.from(badBytes), 5, { fastPath: false });
      assert.ok(isError(bad), hex(Buffer.from(badBytes)));
      for (const v of VERSIONS) {
        const sub = subscribe(v, 7, 'x/y');
        const got = decodeFrame(sub, v);
        assert.ok(!isError(got), `after ${hex(Buffer.from(badBytes))}: ${JSON.stringify(got)}`);
        assert.equal((got as { messageId: number }).messageId, 7);
      }
    }
  });

  test('bridge mode (protocol level | 0x80) stays with the connection that asked for it', () => {
    const bridged: Packet[] = [];
    const plain: Packet[] = [];
    const db = new Decoder({ packet: (p) => bridged.push(p), error: (e) => assert.fail(e.message) }, MiB);
    const dp = new Decoder({ packet: (p) => plain.push(p), error: (e) => assert.fail(e.message) }, MiB);
    const bridgeConnect = Buffer.from(connect(4, 'br'));
    bridgeConnect[8] = 0x84; // Protocol Level 4 with the bridge bit
    db.push(bridgeConnect);
    dp.push(connect(4, 'pl'));
    db.push(subscribe(4, 1, 'a'));
    dp.push(subscribe(4, 1, 'a'));
    assert.equal((bridged[0] as { bridgeMode?: boolean }).bridgeMode, true);
    assert.deepEqual({ ...(bridged[1] as { subscriptions: unknown[] }).subscriptions[0]! }, { topic: 'a', qos: 1, rh: 0, rap: true, nl: true });
    assert.deepEqual({ ...(plain[1] as { subscriptions: unknown[] }).subscriptions[0]! }, { topic: 'a', qos: 1 });
  });

  test('many decoders, random interleaving of random chunks: each decodes as if alone', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom<Version>(3, 4, 5), fc.array(fc.nat(), { maxLength: 6 })), { minLength: 2, maxLength: 5 }),
        fc.array(fc.nat(), { minLength: 10, maxLength: 60 }),
        fc.boolean(),
        (conns, schedule, fastPath) => {
          const streams = conns.map(([v], i) => Buffer.concat([connect(v, `c${i}`), subscribe(v, 1, `t/${i}`), generate({ cmd: 'publish', topic: `t/${i}`, payload: Buffer.from('p'), qos: 1, messageId: 2 } as Packet, v), unsubscribe(v, 3, `t/${i}`), Buffer.from([0xc0, 0x00])]));
          const chunks = streams.map((s, i) => splitAt(s, conns[i]![1]));
          const traces = streams.map(() => ({ packets: [] as Packet[], errors: [] as DecodeError[] }));
          const decoders = traces.map((t) => new Decoder({ packet: (p) => t.packets.push(p), error: (e) => t.errors.push(e) }, MiB, { fastPath }));
          const next = chunks.map(() => 0);
          for (const s of schedule) {
            const i = s % decoders.length;
            if (next[i]! < chunks[i]!.length) decoders[i]!.push(chunks[i]![next[i]!++]!);
          }
          for (let i = 0; i < decoders.length; i++) while (next[i]! < chunks[i]!.length) decoders[i]!.push(chunks[i]![next[i]!++]!);
          for (let i = 0; i < streams.length; i++) {
            const alone = run([streams[i]!], 4, fastPath);
            assertSameTrace(traces[i]!, alone, `connection ${i}`);
            assert.deepEqual(traces[i]!.errors, []);
            assert.equal(traces[i]!.packets.length, 5);
          }
        },
      ),
      cfg(0x5a4e, 300),
    );
  });
});
