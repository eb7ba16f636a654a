import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, encode, type DecodeError, type Packet } from './codec.js';
import { FIXTURES, MALFORMED, packetOfExactly1024Bytes, type CodecFixture, type FixtureVersion } from './fixtures.js';
import { RC } from './reason-codes.js';

const MiB = 1024 * 1024;

interface Outcome {
  packets: Packet[];
  errors: DecodeError[];
}

/**
 * Runs `chunks` through a fresh Decoder. CONNECT fixtures are fed to a decoder in its initial
 * state (CONNECT itself selects the version); everything else to one switched to `version`.
 */
function decode(chunks: Buffer[], version: FixtureVersion | undefined, maxPacketSize = MiB): Outcome {
  const out: Outcome = { packets: [], errors: [] };
  const d = new Decoder({ packet: (p) => out.packets.push(p), error: (e) => out.errors.push(e) }, maxPacketSize);
  if (version !== undefined) d.protocolVersion = version;
  for (const c of chunks) assert.doesNotThrow(() => d.push(c), 'Decoder.push must never throw');
  return out;
}

function oneByteAtATime(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i++) out.push(b.subarray(i, i + 1));
  return out;
}

/** Deterministic split of `b` into chunks (xorshift PRNG, so failures reproduce). */
function randomSplit(b: Buffer, seed: number): Buffer[] {
  let x = seed || 1;
  const rnd = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  const out: Buffer[] = [];
  let i = 0;
  while (i < b.length) {
    const n = 1 + Math.floor(rnd() * 16);
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

/**
 * Comparable form of a decoded packet: plain objects (mqtt-packet builds user properties on a
 * null prototype), and the `topic`/`payload` slots mqtt-packet leaves null on non-PUBLISH packets
 * removed.
 */
function normalize(v: unknown, top = true): unknown {
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (Array.isArray(v)) return v.map((x) => normalize(x, false));
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      const val = (v as Record<string, unknown>)[k];
      if (top && (k === 'topic' || k === 'payload') && val === null && (v as Packet).cmd !== 'publish') continue;
      if (val === undefined) continue;
      o[k] = normalize(val, false);
    }
    return o;
  }
  return v;
}

function withoutLength(p: unknown): unknown {
  const { length: _ignored, ...rest } = normalize(p) as Record<string, unknown>;
  return rest;
}

function decoderVersion(f: CodecFixture): FixtureVersion | undefined {
  return f.packet.cmd === 'connect' ? undefined : f.version;
}

function hex(b: Buffer): string {
  return b.toString('hex').replace(/(..)/g, '$1 ').trim();
}

describe('codec fixtures', () => {
  test('the fixture table covers every packet type in 3.1.1 and 5.0', () => {
    const all = ['connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect'];
    for (const v of [4, 5] as const) {
      const have = new Set(FIXTURES.filter((f) => f.version === v).map((f) => f.packet.cmd));
      for (const cmd of [...all, ...(v === 5 ? ['auth'] : [])]) assert.ok(have.has(cmd as Packet['cmd']), `no ${v === 5 ? '5.0' : '3.1.1'} fixture for ${cmd}`);
    }
    const names = FIXTURES.map((f) => f.name);
    assert.equal(new Set(names).size, names.length, 'fixture names are unique');
  });

  test('every fixture states its Remaining Length correctly (header byte + varint + body)', () => {
    for (const f of FIXTURES) {
      const len = (f.packet as { length: number }).length;
      // All fixtures are < 128 bytes of body except none, so the Remaining Length is one byte.
      assert.ok(len < 128, f.name);
      assert.equal(f.bytes[1], len, `${f.name}: Remaining Length byte`);
      assert.equal(f.bytes.length, 2 + len, `${f.name}: total size`);
    }
  });

  for (const f of FIXTURES) {
    describe(f.name, () => {
      const wire = f.canonical ?? f.bytes;

      test('decode', () => {
        const r = decode([f.bytes], decoderVersion(f));
        assert.deepEqual(r.errors, [], `${f.spec}\nbytes: ${hex(f.bytes)}`);
        assert.equal(r.packets.length, 1);
        assert.deepStrictEqual(normalize(r.packets[0]), normalize(f.packet));
      });

      test('decode fed one byte at a time', () => {
        const r = decode(oneByteAtATime(f.bytes), decoderVersion(f));
        assert.deepEqual(r.errors, [], `${f.spec}\nbytes: ${hex(f.bytes)}`);
        assert.equal(r.packets.length, 1);
        assert.deepStrictEqual(normalize(r.packets[0]), normalize(f.packet));
      });

      test('encode', () => {
        assert.equal(hex(encode(f.packet, f.version)), hex(wire), f.spec);
      });

      test('round trip', () => {
        // packet -> bytes -> packet
        const again = decode([encode(f.packet, f.version)], decoderVersion(f));
        assert.deepEqual(again.errors, []);
        assert.equal(again.packets.length, 1);
        assert.deepStrictEqual(withoutLength(again.packets[0]), withoutLength(f.packet));
        // bytes -> packet -> bytes (the canonical form when the fixture is a shortened encoding)
        const decoded = decode([f.bytes], decoderVersion(f));
        assert.equal(decoded.packets.length, 1, `decoding ${hex(f.bytes)}: ${JSON.stringify(decoded.errors)}`);
        assert.equal(hex(encode(decoded.packets[0]!, f.version)), hex(wire));
      });
    });
  }
});

describe('codec streams', () => {
  for (const v of [4, 5] as const) {
    const set = FIXTURES.filter((f) => f.version === v);
    // Start with the version's first CONNECT so the decoder switches by itself; use the canonical
    // encodings (a shortened DISCONNECT/AUTH is covered in its own test).
    const ordered = [...set.filter((f) => f.packet.cmd === 'connect'), ...set.filter((f) => f.packet.cmd !== 'connect')];
    const stream = Buffer.concat(ordered.map((f) => f.canonical ?? f.bytes));
    const expected = ordered.map((f) => withoutLength(f.packet));

    test(`${v === 5 ? '5.0' : '3.1.1'}: all fixtures in one stream decode the same whole, byte by byte and at random splits`, () => {
      const splits: Buffer[][] = [[stream], oneByteAtATime(stream)];
      for (let seed = 1; seed <= 20; seed++) splits.push(randomSplit(stream, seed * 7919));
      for (const chunks of splits) {
        const r = decode(chunks, undefined);
        assert.deepEqual(r.errors, [], `chunks: ${chunks.length}`);
        assert.deepStrictEqual(r.packets.map(withoutLength), expected, `chunks: ${chunks.length}`);
      }
    });

    test(`${v === 5 ? '5.0' : '3.1.1'}: the same stream pushed as ranges of larger buffers (push(buf, start, end), as read slabs hand it over) decodes the same`, () => {
      for (let seed = 1; seed <= 10; seed++) {
        const out: Outcome = { packets: [], errors: [] };
        const d = new Decoder({ packet: (p) => out.packets.push(p), error: (e) => out.errors.push(e) }, MiB);
        for (const c of randomSplit(stream, seed * 104729)) {
          // Bytes that must not be read around the range: a framing bug would decode them.
          const host = Buffer.concat([Buffer.alloc(5, 0x30), c, Buffer.alloc(7, 0xff)]);
          d.push(host, 5, 5 + c.length);
        }
        assert.deepEqual(out.errors, [], `seed ${seed}`);
        assert.deepStrictEqual(out.packets.map(withoutLength), expected, `seed ${seed}`);
      }
    });
  }

  test('after a 5.0 CONNECT the following packets are decoded as 5.0 (properties read)', () => {
    const connect = FIXTURES.find((f) => f.name.startsWith('5.0 CONNECT minimal'))!;
    const publish = FIXTURES.find((f) => f.name.startsWith('5.0 PUBLISH QoS 1 with properties'))!;
    for (const chunks of [[Buffer.concat([connect.bytes, publish.bytes])], oneByteAtATime(Buffer.concat([connect.bytes, publish.bytes]))]) {
      const r = decode(chunks, undefined);
      assert.deepEqual(r.errors, []);
      assert.equal(r.packets.length, 2);
      assert.deepStrictEqual(normalize(r.packets[1]), normalize(publish.packet));
    }
  });

  test('after a 3.1.1 CONNECT a PUBLISH has no Property Length', () => {
    const connect = FIXTURES.find((f) => f.name.startsWith('3.1.1 CONNECT minimal'))!;
    const publish = FIXTURES.find((f) => f.name === '3.1.1 PUBLISH QoS 1 retained')!;
    const r = decode([Buffer.concat([connect.bytes, publish.bytes])], undefined);
    assert.deepEqual(r.errors, []);
    assert.deepStrictEqual(normalize(r.packets[1]), normalize(publish.packet));
  });

  test('5.0 PUBLISH whose property runs past its Remaining Length is malformed however it is segmented', () => {
    // Remaining Length 8 ends after 0x23 0xC0: the Topic Alias (Two Byte Integer, 5.0 §1.5.2) is
    // missing its second byte, so the packet is malformed (5.0 §2.2.2.1). The next two bytes are
    // a PINGREQ and must not be borrowed to complete the property.
    const bytes = Buffer.from([0x30, 0x08, 0x00, 0x03, 0x61, 0x2f, 0x62, /* Property Length */ 0x02, /* Topic Alias */ 0x23, 0xc0, /* PINGREQ */ 0xc0, 0x00]);
    const split = decode(oneByteAtATime(bytes), 5);
    assert.equal(split.errors.length, 1, 'byte by byte');
    assert.equal(split.errors[0]!.reasonCode, RC.MalformedPacket);
    const whole = decode([bytes], 5);
    assert.equal(whole.errors.length, 1, `whole chunk ${hex(bytes)} decoded as ${JSON.stringify(whole.packets.map(withoutLength))}`);
    assert.equal(whole.errors[0]!.reasonCode, RC.MalformedPacket);
    assert.equal(whole.packets.length, 0);
  });

  test('5.0 DISCONNECT with Remaining Length 0 followed by more bytes in the same chunk', () => {
    // 5.0 §3.14.2.1: e0 00 is a complete DISCONNECT (Normal disconnection). Whatever follows it in
    // the same TCP segment belongs to the next packet and must not be read as its Reason Code.
    // Fed byte by byte this decodes; fed whole it must decode the same.
    const bytes = Buffer.from([0xe0, 0x00, /* PINGREQ */ 0xc0, 0x00]);
    const split = decode(oneByteAtATime(bytes), 5);
    assert.deepEqual(split.errors, []);
    assert.deepEqual(split.packets.map((p) => p.cmd), ['disconnect', 'pingreq']);
    const whole = decode([bytes], 5);
    assert.deepEqual(whole.errors, [], `whole chunk ${hex(bytes)}`);
    assert.deepEqual(whole.packets.map((p) => p.cmd), ['disconnect', 'pingreq']);
    assert.equal((whole.packets[0] as { reasonCode?: number }).reasonCode, 0);
  });
});

describe('codec malformed input', () => {
  for (const m of MALFORMED) {
    describe(m.name, () => {
      const feeds: Array<[string, Buffer[]]> = [
        ['whole', [m.bytes]],
        ['one byte at a time', oneByteAtATime(m.bytes)],
      ];
      for (const [how, chunks] of feeds) {
        test(`error ${'0x' + m.reasonCode.toString(16)} (${how}), later input ignored`, () => {
          const out: Outcome = { packets: [], errors: [] };
          const d = new Decoder({ packet: (p) => out.packets.push(p), error: (e) => out.errors.push(e) }, m.maxPacketSize ?? MiB);
          d.protocolVersion = m.version;
          for (const c of chunks) assert.doesNotThrow(() => d.push(c), 'Decoder.push must never throw');
          assert.equal(out.errors.length, 1, `${m.spec}\nbytes: ${hex(m.bytes)}; packets: ${JSON.stringify(out.packets.map((p) => p.cmd))}`);
          assert.equal(out.errors[0]!.reasonCode, m.reasonCode, out.errors[0]!.message);
          assert.equal(typeof out.errors[0]!.message, 'string');
          assert.equal(out.packets.length, m.packetsBefore ?? 0, `packets: ${JSON.stringify(out.packets.map((p) => p.cmd))}`);
          // Nothing after the first error: no second error, no packets, no exception.
          assert.doesNotThrow(() => d.push(Buffer.from([0xc0, 0x00, 0xc0, 0x00])));
          assert.doesNotThrow(() => d.push(m.bytes));
          assert.equal(out.errors.length, 1);
          assert.equal(out.packets.length, m.packetsBefore ?? 0);
        });
      }
    });
  }

  test('a packet of exactly the Maximum Packet Size is accepted (whole and byte by byte)', () => {
    const b = packetOfExactly1024Bytes();
    assert.equal(b.length, 1024);
    for (const chunks of [[b], oneByteAtATime(b)]) {
      const r = decode(chunks, 4, 1024);
      assert.deepEqual(r.errors, []);
      assert.equal(r.packets.length, 1);
      assert.equal((r.packets[0] as { payload: Buffer }).payload.length, 1016);
    }
  });

  test('one byte over the Maximum Packet Size is refused from the fixed header alone', () => {
    // Remaining Length 1022 -> 0xFE 0x07; no body sent at all.
    const r = decode([Buffer.from([0x30, 0xfe, 0x07])], 4, 1024);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]!.reasonCode, RC.PacketTooLarge);
  });

  test('setMaxPacketSize applies to the next packet', () => {
    const out: Outcome = { packets: [], errors: [] };
    const d = new Decoder({ packet: (p) => out.packets.push(p), error: (e) => out.errors.push(e) }, MiB);
    d.push(Buffer.from([0xc0, 0x00]));
    d.setMaxPacketSize(100);
    d.push(Buffer.from([0x30, 0x64])); // Remaining Length 100 -> 102 bytes > 100
    assert.equal(out.packets.length, 1);
    assert.equal(out.errors.length, 1);
    assert.equal(out.errors[0]!.reasonCode, RC.PacketTooLarge);
  });

  test('a handler exception does not escape push', () => {
    const errors: DecodeError[] = [];
    const d = new Decoder(
      {
        packet: () => {
          throw new Error('boom');
        },
        error: (e) => errors.push(e),
      },
      MiB,
    );
    assert.doesNotThrow(() => d.push(Buffer.from([0xc0, 0x00])));
    assert.equal(errors.length, 1);
  });
});
