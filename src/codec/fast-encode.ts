/**
 * Hand-written encoding of the packets the broker sends most: PUBLISH (3.1, 3.1.1, 5.0 with the
 * properties a broker forwards), PUBACK, PUBREC, PUBREL, PUBCOMP (short form, with a Reason Code,
 * with Reason String / User Properties) and PINGRESP / PINGREQ.
 *
 * Why by hand: mqtt-packet's `generate` writes each field as a separate small Buffer into an
 * EventEmitter-based accumulator and concatenates them at the end; per outgoing message that is a
 * dozen allocations and copies, measurable at broker rates (see codec-bench.ts). Here the exact
 * size is computed first and the packet is written into ONE `Buffer.allocUnsafe` (no concat),
 * with the UTF-8 bytes of the last topic cached for fan-out (see `encodePublishFast`).
 * mqtt-packet stays the encoder of every other packet.
 *
 * The output is byte-for-byte what `mqttPacket.generate` produces for the same packet (checked by
 * fast.test.ts on random packets). Anything unusual returns undefined so that the caller falls
 * back to mqtt-packet, which then produces its own bytes, or throws, exactly as before: a topic
 * or payload that is neither string nor Buffer, a Packet Identifier that is not an integer in
 * 0..65535, a property value of the wrong type or range, an empty array or User Property object
 * (mqtt-packet writes nothing at all then), a property the broker does not send (e.g. Session
 * Expiry Interval), a properties object with inherited enumerable keys, a PUBREL with DUP set.
 */
import { Buffer } from 'node:buffer';

/** Buffer's native UTF-8 writer (stable since Node 0.x; not in @types/node). */
type Utf8Writer = { utf8Write(s: string, offset: number): number };

// Property kinds (mqtt-packet's propertiesTypes) and identifiers (5.0 §2.2.2.2).
const BYTE = 1;
const INT16 = 2;
const INT32 = 3;
const VAR = 4;
const STRING = 5;
const BINARY = 6;
const PAIR = 7;

/** (identifier << 3) | kind of the properties encoded here; 0 for the rest (mqtt-packet's). */
function propertyCode(name: string): number {
  switch (name) {
    case 'payloadFormatIndicator':
      return (0x01 << 3) | BYTE;
    case 'messageExpiryInterval':
      return (0x02 << 3) | INT32;
    case 'contentType':
      return (0x03 << 3) | STRING;
    case 'responseTopic':
      return (0x08 << 3) | STRING;
    case 'correlationData':
      return (0x09 << 3) | BINARY;
    case 'subscriptionIdentifier':
      return (0x0b << 3) | VAR;
    case 'reasonString':
      return (0x1f << 3) | STRING;
    case 'topicAlias':
      return (0x23 << 3) | INT16;
    case 'userProperties':
      return (0x26 << 3) | PAIR;
    default:
      return 0;
  }
}

/** Size in bytes of a Variable Byte Integer [MQTT-1.5.5]. */
function vbiSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeVbi(buf: Buffer, pos: number, n: number): number {
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit |= 0x80;
    buf[pos++] = digit;
  } while (n > 0);
  return pos;
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

/** Encoded size of one User Property value set under `name`, or -1. */
function pairLength(nameLength: number, v: unknown): number {
  if (typeof v === 'string') {
    const l = Buffer.byteLength(v);
    return l > 0xffff ? -1 : 5 + nameLength + l;
  }
  if (!Array.isArray(v) || v.length === 0) return -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== 'string') return -1;
    const l = Buffer.byteLength(x);
    if (l > 0xffff) return -1;
    n += 5 + nameLength + l;
  }
  return n;
}

/** Encoded size of one property value, identifier included, or -1 (mqtt-packet's business). */
function valueLength(kind: number, v: unknown): number {
  switch (kind) {
    case BYTE:
      return typeof v === 'boolean' ? 2 : -1;
    case INT16:
      return isUint(v, 0xffff) ? 3 : -1;
    case INT32:
      return isUint(v, 0xffffffff) ? 5 : -1;
    case VAR:
      return isUint(v, 0x0fffffff) ? 1 + vbiSize(v) : -1;
    case STRING: {
      if (typeof v !== 'string') return -1;
      const l = Buffer.byteLength(v);
      return l > 0xffff ? -1 : 3 + l;
    }
    case BINARY:
      return Buffer.isBuffer(v) && v.length <= 0xffff ? 3 + v.length : -1;
    case PAIR: {
      if (typeof v !== 'object' || v === null) return -1;
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return -1;
      let n = 0;
      for (const name of Object.getOwnPropertyNames(v)) {
        const nl = Buffer.byteLength(name);
        if (nl > 0xffff) return -1;
        const l = pairLength(nl, (v as Record<string, unknown>)[name]);
        if (l < 0) return -1;
        n += l;
      }
      // An empty User Property object: mqtt-packet returns an empty Buffer for the whole packet.
      return n === 0 ? -1 : n;
    }
    default:
      return -1;
  }
}

/**
 * Size of a property list (without its Property Length), or -1 when mqtt-packet must encode the
 * packet. Walks `for...in` like mqtt-packet, so the write order is the same.
 */
export function propertiesLength(props: object): number {
  let n = 0;
  for (const name in props) {
    if (!Object.hasOwn(props, name)) return -1; // mqtt-packet counts inherited keys, then skips them
    const v: unknown = (props as Record<string, unknown>)[name];
    if (v === undefined) continue;
    const code = propertyCode(name);
    if (code === 0 || v === null) return -1;
    const kind = code & 7;
    if (Array.isArray(v)) {
      // Each element is written as the property again (e.g. several Subscription Identifiers).
      if (v.length === 0 || kind === PAIR) return -1;
      for (let i = 0; i < v.length; i++) {
        const l = valueLength(kind, v[i]);
        if (l < 0) return -1;
        n += l;
      }
    } else {
      const l = valueLength(kind, v);
      if (l < 0) return -1;
      n += l;
    }
  }
  return n;
}

function writeString(buf: Buffer, pos: number, s: string): number {
  const n = (buf as unknown as Utf8Writer).utf8Write(s, pos + 2);
  buf[pos] = n >> 8;
  buf[pos + 1] = n & 0xff;
  return pos + 2 + n;
}

function writeValue(buf: Buffer, pos: number, code: number, v: unknown): number {
  const kind = code & 7;
  if (kind === PAIR) {
    const up = v as Record<string, string | string[]>;
    for (const name of Object.getOwnPropertyNames(up)) {
      const val = up[name]!;
      if (typeof val === 'string') {
        buf[pos++] = code >> 3;
        pos = writeString(buf, writeString(buf, pos, name), val);
      } else {
        for (let i = 0; i < val.length; i++) {
          buf[pos++] = code >> 3;
          pos = writeString(buf, writeString(buf, pos, name), val[i]!);
        }
      }
    }
    return pos;
  }
  buf[pos++] = code >> 3;
  switch (kind) {
    case BYTE:
      buf[pos++] = v ? 1 : 0;
      return pos;
    case INT16:
      buf[pos] = (v as number) >> 8;
      buf[pos + 1] = (v as number) & 0xff;
      return pos + 2;
    case INT32:
      return buf.writeUInt32BE(v as number, pos);
    case VAR:
      return writeVbi(buf, pos, v as number);
    case STRING:
      return writeString(buf, pos, v as string);
    default: {
      // BINARY
      const b = v as Buffer;
      buf[pos] = b.length >> 8;
      buf[pos + 1] = b.length & 0xff;
      buf.set(b, pos + 2);
      return pos + 2 + b.length;
    }
  }
}

/** Writes a property list already measured by `propertiesLength`. */
function writeProperties(buf: Buffer, pos: number, props: object): number {
  for (const name in props) {
    const v: unknown = (props as Record<string, unknown>)[name];
    if (v === undefined) continue;
    const code = propertyCode(name);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) pos = writeValue(buf, pos, code, v[i]);
    } else pos = writeValue(buf, pos, code, v);
  }
  return pos;
}

/**
 * Size of the properties of a 5.0 packet as mqtt-packet's getProperties sees them: 0 for "write
 * an empty property list" (no object, or an array-like one), -1 for "let mqtt-packet do it".
 */
function packetPropertiesLength(props: unknown): number {
  if (typeof props !== 'object') return 0;
  if (props === null) return -1; // mqtt-packet throws on null
  if ((props as { length?: unknown }).length != null) return 0;
  return propertiesLength(props);
}

// ----------------------------------------------------------------------------- topic cache

/**
 * The last topic encoded, and its UTF-8 bytes once it has been seen twice in a row. A fan-out
 * loop encodes the same topic for every subscriber: from the second one on, the topic is copied
 * from here instead of being measured and transcoded again. A topic seen once costs nothing more
 * than writing it directly.
 */
let lastTopic: string | undefined;
let lastTopicLength = 0;
let lastTopicBytes: Buffer | undefined;

/**
 * Encodes a PUBLISH into one Buffer, byte-identical to mqtt-packet's generate for
 * `{ cmd: 'publish', topic, payload, qos, retain, dup, messageId, properties }`; undefined when
 * mqtt-packet must encode it (see the file header).
 */
export function encodePublishFast(
  topic: unknown,
  payload: unknown,
  qos: unknown,
  retain: unknown,
  dup: unknown,
  messageId: unknown,
  version: number,
  properties: unknown,
): Buffer | undefined {
  if (typeof topic !== 'string') return undefined;
  const q = qos || 0; // mqtt-packet: `settings.qos || 0`
  if (q !== 0 && q !== 1 && q !== 2) return undefined;
  // A PUBLISH with QoS 1 or 2 carries a Packet Identifier (5.0 §2.2.1; 3.1.1 §2.3.1).
  if (q !== 0 && !isUint(messageId, 0xffff)) return undefined;
  let payloadLength: number;
  if (Buffer.isBuffer(payload)) payloadLength = payload.length;
  else if (typeof payload === 'string') payloadLength = Buffer.byteLength(payload);
  else if (payload === undefined || payload === null) payloadLength = 0; // mqtt-packet: `payload || empty`
  else return undefined;
  let topicLength: number;
  let topicBytes: Buffer | undefined;
  if (topic === lastTopic) {
    topicLength = lastTopicLength;
    topicBytes = lastTopicBytes ??= Buffer.from(topic, 'utf8');
  } else {
    topicLength = Buffer.byteLength(topic);
    lastTopic = topic;
    lastTopicLength = topicLength;
    lastTopicBytes = undefined;
  }
  if (topicLength > 0xffff) return undefined; // mqtt-packet's two-byte length cache has no entry
  let propsLength = 0;
  let remaining = 2 + topicLength + (q !== 0 ? 2 : 0) + payloadLength;
  if (version === 5) {
    propsLength = packetPropertiesLength(properties);
    if (propsLength < 0) return undefined;
    remaining += vbiSize(propsLength) + propsLength;
  }
  if (remaining > 268435455) return undefined; // Remaining Length maximum (5.0 §1.5.5)
  const buf = Buffer.allocUnsafe(1 + vbiSize(remaining) + remaining);
  // Fixed header: type 3, DUP, QoS, RETAIN (5.0 §3.3.1).
  buf[0] = 0x30 | (dup ? 0x08 : 0) | (q << 1) | (retain ? 0x01 : 0);
  let pos = writeVbi(buf, 1, remaining);
  buf[pos] = topicLength >> 8;
  buf[pos + 1] = topicLength & 0xff;
  pos += 2;
  if (topicBytes !== undefined) buf.set(topicBytes, pos);
  else (buf as unknown as Utf8Writer).utf8Write(topic, pos);
  pos += topicLength;
  if (q !== 0) {
    buf[pos] = (messageId as number) >> 8;
    buf[pos + 1] = (messageId as number) & 0xff;
    pos += 2;
  }
  if (version === 5) {
    pos = writeVbi(buf, pos, propsLength);
    if (propsLength > 0) pos = writeProperties(buf, pos, properties as object);
  }
  if (payloadLength > 0) {
    if (typeof payload === 'string') (buf as unknown as Utf8Writer).utf8Write(payload, pos);
    else buf.set(payload as Buffer, pos);
  }
  return buf;
}

const ACK_HEADER: Record<string, number> = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 };

/**
 * The first byte of an ack that goes out as four bytes (fixed header and Packet Identifier):
 * always in 3.1 / 3.1.1 (3.1.1 §3.4 - §3.7), in 5.0 for Reason Code 0x00 without properties
 * (`encode()` sends those in the short form, 5.0 §3.4.2.1); 0 for any other form, or for what
 * `encodeAckFast` does not take. The channel writes these bytes itself (Connection.writeAck).
 */
export function fourByteAckHeader(cmd: string, messageId: unknown, reasonCode: unknown, properties: unknown, dup: unknown, version: number): number {
  const header = ACK_HEADER[cmd];
  if (header === undefined || !isUint(messageId, 0xffff)) return 0;
  // PUBREL's fixed header is 0110 0010 [MQTT-3.6.1-1]; mqtt-packet throws on a DUP one.
  if (dup && cmd === 'pubrel') return 0;
  if (version !== 5) return header;
  return (reasonCode === undefined || reasonCode === 0) && properties === undefined ? header : 0;
}

function fourByteAck(header: number, messageId: number): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf[0] = header;
  buf[1] = 2;
  buf[2] = messageId >> 8;
  buf[3] = messageId & 0xff;
  return buf;
}

/**
 * Encodes PUBACK / PUBREC / PUBREL / PUBCOMP, byte-identical to what `encode()` produced before
 * (mqtt-packet's generate, after turning a 5.0 ack without reason code and properties into the
 * short form); undefined when mqtt-packet must encode it.
 */
export function encodeAckFast(
  cmd: string,
  messageId: unknown,
  reasonCode: unknown,
  properties: unknown,
  dup: unknown,
  version: number,
): Buffer | undefined {
  const short = fourByteAckHeader(cmd, messageId, reasonCode, properties, dup, version);
  if (short !== 0) return fourByteAck(short, messageId as number);
  // What is left: 5.0 with a Reason Code other than 0x00, or properties.
  const header = ACK_HEADER[cmd];
  if (version !== 5 || header === undefined || !isUint(messageId, 0xffff) || (dup && cmd === 'pubrel')) return undefined;
  if (reasonCode !== undefined && !isUint(reasonCode, 0xff)) return undefined;
  if (typeof properties === 'object') {
    // With a properties object, mqtt-packet always writes Reason Code and Property Length.
    const propsLength = packetPropertiesLength(properties);
    if (propsLength < 0) return undefined;
    const remaining = 3 + vbiSize(propsLength) + propsLength;
    const buf = Buffer.allocUnsafe(1 + vbiSize(remaining) + remaining);
    buf[0] = header;
    let pos = writeVbi(buf, 1, remaining);
    buf[pos] = messageId >> 8;
    buf[pos + 1] = messageId & 0xff;
    buf[pos + 2] = (reasonCode as number | undefined) ?? 0;
    pos = writeVbi(buf, pos + 3, propsLength);
    if (propsLength > 0) writeProperties(buf, pos, properties as object);
    return buf;
  }
  if (reasonCode === 0) return fourByteAck(header, messageId);
  // Reason Code, then an empty Property Length (5.0 §3.4.2.2.1).
  const buf = Buffer.allocUnsafe(6);
  buf[0] = header;
  buf[1] = 4;
  buf[2] = messageId >> 8;
  buf[3] = messageId & 0xff;
  buf[4] = (reasonCode as number | undefined) ?? 0;
  buf[5] = 0;
  return buf;
}

/** PINGREQ / PINGRESP: fixed header only (5.0 §3.12, §3.13). A fresh Buffer, like mqtt-packet's. */
export function encodeEmpty(type: number): Buffer {
  const buf = Buffer.allocUnsafe(2);
  buf[0] = type << 4;
  buf[1] = 0;
  return buf;
}
