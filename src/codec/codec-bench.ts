/**
 * Micro-benchmark of the codec's hand-written fast path against mqtt-packet (not a test).
 *
 *   npm run build && node dist/codec/codec-bench.js [milliseconds per case, default 200]
 *
 * Prints ops/s for decoding and encoding a PUBLISH with a 64-byte payload and a PUBACK, fast path
 * vs mqtt-packet, and the heap held by one idle Decoder. Runs single-threaded for a few seconds;
 * on a shared machine compare the ratios, not the absolute figures.
 */
import { Buffer } from 'node:buffer';
import v8 from 'node:v8';
import vm from 'node:vm';
import mqttPacket from 'mqtt-packet';
import { Decoder, encode, encodePublish, type Packet } from './codec.js';
import { Framer } from './framer.js';

const MS = Number(process.argv[2] ?? 200) || 200;
const TOPIC = 'sensors/building-7/room-12/temperature';
const PAYLOAD = Buffer.alloc(64, 0x61);

let sink = 0;

/** ops/s of `fn` over about MS milliseconds (after a warm-up). */
function measure(fn: () => void): number {
  const until = (ms: number) => {
    const end = performance.now() + ms;
    let n = 0;
    while (performance.now() < end) {
      for (let i = 0; i < 1000; i++) fn();
      n += 1000;
    }
    return n;
  };
  until(Math.min(100, MS / 3));
  const t0 = performance.now();
  const n = until(MS);
  return n / ((performance.now() - t0) / 1000);
}

const rows: Array<[string, string, string, string]> = [];
function compare(name: string, fast: () => void, slow: () => void, slowName = 'mqtt-packet'): void {
  const f = measure(fast);
  const s = measure(slow);
  rows.push([name, fmt(f), `${fmt(s)} (${slowName})`, `${(f / s).toFixed(1)}x`]);
}
const fmt = (n: number) => `${(n / 1e6).toFixed(2)} M/s`;

// ----------------------------------------------------------------------------------- decoding

/** A decoder in `version` whose handler only counts. */
function decoder(version: 3 | 4 | 5, fastPath: boolean): Decoder {
  const d = new Decoder({ packet: () => void sink++, error: (e) => { throw new Error(e.message); } }, 1 << 20, { fastPath });
  d.protocolVersion = version;
  return d;
}

/** The decoder as it was before the fast path: a Framer in front of a per-connection mqtt-packet parser. */
function legacyDecoder(version: 3 | 4 | 5): { push(b: Buffer): void } {
  const parser = mqttPacket.parser({ protocolVersion: version });
  parser.on('packet', () => void sink++);
  parser.on('error', (e: Error) => {
    throw e;
  });
  return new Framer({ frame: (bytes) => parser.parse(bytes), error: (_k, m) => { throw new Error(m); } }, 1 << 20);
}

function decodeCase(name: string, version: 3 | 4 | 5, packet: Packet): void {
  const frame = mqttPacket.generate(packet, { protocolVersion: version });
  const fast = decoder(version, true);
  const shared = decoder(version, false);
  const legacy = legacyDecoder(version);
  compare(`decode ${name}`, () => fast.push(frame), () => legacy.push(frame), 'mqtt-packet, parser per connection');
  compare(`decode ${name}`, () => fast.push(frame), () => shared.push(frame), 'mqtt-packet, shared parser');
}

const publish4 = { cmd: 'publish', topic: TOPIC, payload: PAYLOAD, qos: 0, retain: false, dup: false } as Packet;
const publish5 = { cmd: 'publish', topic: TOPIC, payload: PAYLOAD, qos: 1, messageId: 42, retain: false, dup: false } as Packet;
const publish5props = {
  ...publish5,
  properties: { topicAlias: 3, messageExpiryInterval: 60, userProperties: { trace: 'abc123' } },
} as Packet;
const puback = { cmd: 'puback', messageId: 42 } as Packet;

decodeCase('PUBLISH 3.1.1 QoS 0, 64 B', 4, publish4);
decodeCase('PUBLISH 5.0 QoS 1, 64 B, no properties', 5, publish5);
decodeCase('PUBLISH 5.0 QoS 1, 64 B, 3 properties', 5, publish5props);
decodeCase('PUBACK 3.1.1', 4, puback);
decodeCase('PUBACK 5.0', 5, { ...puback, reasonCode: 0 } as Packet);

// ----------------------------------------------------------------------------------- encoding

function encodeCase(name: string, version: 3 | 4 | 5, packet: Packet): void {
  compare(`encode ${name}`, () => void (sink += encode(packet, version).length), () => void (sink += mqttPacket.generate(packet, { protocolVersion: version }).length));
}

encodeCase('PUBLISH 3.1.1 QoS 0, 64 B', 4, publish4);
encodeCase('PUBLISH 5.0 QoS 1, 64 B, no properties', 5, { ...publish5, properties: {} } as Packet);
encodeCase('PUBLISH 5.0 QoS 1, 64 B, subscription id + expiry', 5, { ...publish5, properties: { subscriptionIdentifier: 7, messageExpiryInterval: 60 } } as Packet);
encodeCase('PUBACK 3.1.1', 4, puback);
encodeCase('PUBACK 5.0 (short form)', 5, { ...puback, reasonCode: 0 } as Packet);
encodeCase('PINGRESP', 4, { cmd: 'pingresp' } as Packet);
// Fan-out: the same message to subscriber after subscriber (packet id varies).
let id = 0;
compare(
  'encodePublish fan-out, 3.1.1 QoS 1, 64 B',
  () => void (sink += encodePublish(TOPIC, PAYLOAD, 1, false, false, (id = (id % 65535) + 1), 4).length),
  () => void (sink += mqttPacket.generate({ cmd: 'publish', topic: TOPIC, payload: PAYLOAD, qos: 1, retain: false, dup: false, messageId: (id = (id % 65535) + 1) }, { protocolVersion: 4 }).length),
);
compare(
  'encodePublish fan-out vs encode(), 3.1.1 QoS 1',
  () => void (sink += encodePublish(TOPIC, PAYLOAD, 1, false, false, (id = (id % 65535) + 1), 4).length),
  () => void (sink += encode({ cmd: 'publish', topic: TOPIC, payload: PAYLOAD, qos: 1, retain: false, dup: false, messageId: (id = (id % 65535) + 1) }, 4).length),
  'encode() with a packet object',
);

// ------------------------------------------------------------------------------------- memory

const gc = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

/** Heap bytes per object made by `make`, holding N of them. */
function heapPer(make: () => unknown, n = 20000): number {
  const keep: unknown[] = new Array(n);
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) keep[i] = make();
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  sink += keep.length;
  return (after - before) / n;
}

/**
 * The per-connection part of the Decoder before the fast path, as its constructor built it: an
 * mqtt-packet parser (EventEmitter, BufferList, Packet, settings, state list) with two listener
 * closures and a bound string reader, and a Framer with two handler closures.
 */
class LegacyDecoder {
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 });
  private readonly framer: Framer;
  private failed = false;
  private version = 4;
  private emitted: Packet | undefined;
  constructor(private readonly handlers: { packet(p: Packet): void; error(e: unknown): void }) {
    this.parser.on('packet', (p: Packet) => (this.emitted = p));
    this.parser.on('error', (err: Error) => this.handlers.error(err));
    (this.parser as unknown as { _parseString: () => unknown })._parseString = function (this: LegacyDecoder) {
      return this.emitted ?? this.version ?? this.failed;
    }.bind(this);
    this.framer = new Framer({ frame: (b) => this.parser.parse(b), error: (_k, m) => this.handlers.error(m) }, 1 << 20);
  }
  push(chunk: Buffer): void {
    this.framer.push(chunk);
  }
}

const handlers = { packet: () => void sink++, error: () => void sink++ };
const perDecoder = heapPer(() => new Decoder(handlers, 1 << 20));
const perLegacy = heapPer(() => new LegacyDecoder(handlers));
// As a Connection makes them: its own handler object with two closures.
const perDecoderWithHandlers = heapPer(() => {
  const conn = { n: 0 };
  return new Decoder({ packet: () => void conn.n++, error: () => void conn.n++ }, 1 << 20);
});

// --------------------------------------------------------------------------------------- print

const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
console.log(`codec micro-benchmark (${MS} ms per case; node ${process.version})\n`);
console.log(['case'.padEnd(w[0]!), 'fast path'.padStart(w[1]!), 'baseline'.padStart(w[2]!), 'ratio'.padStart(w[3]!)].join('  '));
for (const r of rows) console.log([r[0].padEnd(w[0]!), r[1].padStart(w[1]!), r[2].padStart(w[2]!), r[3].padStart(w[3]!)].join('  '));
console.log(`\nheap per idle Decoder: ${perDecoder.toFixed(0)} B (${perDecoderWithHandlers.toFixed(0)} B with a Connection's handler closures); before: ${perLegacy.toFixed(0)} B (mqtt-packet parser + Framer per connection)`);
if (sink === -1) console.log(sink);
