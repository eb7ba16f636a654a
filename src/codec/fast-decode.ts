/**
 * Hand-written decoding of the packets on the hot path: PUBLISH, PUBACK, PUBREC, PUBREL,
 * PUBCOMP, PINGREQ and DISCONNECT, and CONNECT without properties (the connect-rate path).
 *
 * Why by hand: profiling the broker at Mosquitto-like rates showed mqtt-packet's streaming Parser
 * (a BufferList, an EventEmitter, a state machine and a fresh Packet per message) as a large share
 * of the CPU spent per message. Here the Framer (framer.ts) has already cut exactly one whole
 * packet out of the stream, so a packet can be read with plain index arithmetic on one Buffer.
 * mqtt-packet stays the decoder of everything else (SUBSCRIBE, AUTH, ...) and of every unusual
 * form of the hot packets (a CONNECT with 5.0 properties among them): see `Decoder` in codec.ts.
 * For CONNECT, a profile of 10,000 clients connecting put mqtt-packet's parse (BufferList, debug
 * calls, its Packet) at about 8% of the broker's time.
 *
 * The contract, checked by fast.test.ts against mqtt-packet on random and mutated packets:
 *   - a returned packet object has exactly the fields and values mqtt-packet (with the strict
 *     string reader of codec.ts) produces for the same bytes, in the same key order; only the
 *     prototype differs (a plain object instead of mqtt-packet's `Packet` class);
 *   - a returned string is an error message for a packet that mqtt-packet (plus the codec's rules)
 *     also refuses, always as a Malformed Packet (0x81);
 *   - `undefined` means "not handled here": the caller hands the frame to mqtt-packet. This is
 *     returned for every form this file does not decode completely (v5 acks and DISCONNECT with
 *     properties, a repeated property, a property running past the Property Length, ...), so
 *     mqtt-packet's own answer, lenient or not, stays the reference.
 *
 * Payloads and Binary Data properties are views into the frame (no copy). That is safe because
 * the frame is never reused: the Framer hands out subarrays of the socket chunk or of a fresh
 * Buffer.concat, and the readers give every read memory of its own (mqtt-packet's
 * BufferList.slice returns views into the same chunk too). Except where the bytes will be kept
 * (`keptBytes`): a QoS 1/2 or retained PUBLISH's payload and Correlation Data, a will's payload,
 * in a frame whose memory is more than VIEW_PIN_SLACK larger than they are, get a copy of their
 * own, so that a queued message or a session's will does not pin a whole socket read.
 */
import { Buffer } from 'node:buffer';
import type { Packet } from 'mqtt-packet';
import { readUtf8, utf8Problem } from './utf8.js';
import { VIEW_PIN_SLACK } from './framer.js';

/**
 * The ArrayBuffer under the last frame seen, looked up once per frame buffer (a read of tens of
 * PUBLISH packets is one buffer): in Node 20 `Buffer#buffer`, which `subarray` and a partial
 * `copy` read too, is a call into a C++ builtin; per payload, with the copy check, that was two
 * calls per message, about 5% of the broker's CPU in fan-in QoS 1. Holds one buffer at most.
 */
let backingOf: Buffer | undefined;
let backing: ArrayBufferLike = new ArrayBuffer(0);
/** `backingOf.byteOffset` (a getter call too, a third of this function's own time when read per payload). */
let backingAt = 0;

/**
 * Bytes `frame[pos .. end)` as a Buffer: a view, or when `kept` and the frame's memory is more than
 * VIEW_PIN_SLACK larger than them, a copy in an ArrayBuffer of their own.
 */
export function keptBytes(frame: Buffer, pos: number, end: number, kept: boolean): Buffer {
  if (frame !== backingOf) {
    backingOf = frame;
    backing = frame.buffer;
    backingAt = frame.byteOffset;
  }
  const at = backingAt + pos;
  const n = end - pos;
  if (kept && backing.byteLength > n + VIEW_PIN_SLACK) {
    const own = Buffer.allocUnsafeSlow(n);
    own.set(new Uint8Array(backing, at, n));
    return own;
  }
  return Buffer.from(backing, at, n);
}

/** A decoded packet, an error message (Malformed Packet), or undefined: decode with mqtt-packet. */
export type FastResult = Packet | string | undefined;

/** The codec's rule for a packet whose Packet Identifier is cut off (see codec.ts). */
export const MISSING_PACKET_ID = 'packet identifier missing';
const CANNOT_PARSE_TOPIC = 'Cannot parse topic';
const QOS_3 = 'Packet must not have both QoS bits set to 1';

function table(codes: number[]): Uint8Array {
  const t = new Uint8Array(256);
  for (const c of codes) t[c] = 1;
  return t;
}
// Reason codes each packet may carry; anything else is a Malformed Packet. Same sets as
// mqtt-packet's constants (5.0 §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1, §3.14.2.1).
const PUBACK_PUBREC_CODES = table([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]);
const PUBREL_PUBCOMP_CODES = table([0x00, 0x92]);
const DISCONNECT_CODES = table([
  0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
  0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2,
]);
const ACK_NAMES = ['', '', '', '', 'puback', 'pubrec', 'pubrel', 'pubcomp'] as const;

/**
 * Decodes one whole packet, `frame[start .. start + total)` (fixed header included), whose
 * Remaining Length is `length`, in protocol version `version` (3, 4 or 5). Positions below are
 * absolute in `frame`.
 */
export function decodeFast(frame: Buffer, start: number, total: number, length: number, version: number, memo?: TopicMemo): FastResult {
  const b0 = frame[start]!;
  const off = start + total - length; // first byte after the fixed header
  switch (b0 >> 4) {
    case 1:
      return decodeConnect(frame, b0, off, length);
    case 3:
      return decodePublish(frame, b0, off, length, version, memo);
    case 4:
    case 5:
    case 6:
    case 7:
      return decodeAck(frame, b0, off, length, version);
    case 12:
      // PINGREQ: reserved flags 0000 [MQTT-2.2.2-1] (5.0: [MQTT-2.1.3-1]). mqtt-packet ignores any body.
      if ((b0 & 0x0f) !== 0) return 'Invalid header flag bits, must be 0x0 for pingreq packet';
      return { cmd: 'pingreq', retain: false, qos: 0, dup: false, length, topic: null, payload: null } as unknown as Packet;
    case 14:
      return decodeDisconnect(frame, b0, off, length, version);
    default:
      return undefined;
  }
}

/** Two-byte length then bytes [pos+2, end): the end position, or -1 when it runs past `limit`. */
function fieldEnd(frame: Buffer, pos: number, limit: number): number {
  if (pos + 2 > limit) return -1;
  const end = pos + 2 + ((frame[pos]! << 8) | frame[pos + 1]!);
  return end > limit ? -1 : end;
}

/**
 * CONNECT (3.1.1 §3.1, 5.0 §3.1) in its common forms: protocol name "MQTT" or "MQIsdp", level 3,
 * 4 or 5 (no bridge bit), 5.0 with an empty Property Length in the variable header and in the
 * will, every field inside the packet and no bytes after the last one, strict UTF-8 strings.
 * Everything else (properties, a malformed or odd packet) is left to mqtt-packet, whose answer
 * stays the reference: this returns a packet or undefined, never an error.
 */
function decodeConnect(frame: Buffer, b0: number, off: number, length: number): FastResult {
  // Reserved header flags 0000 [MQTT-2.2.2-1]: mqtt-packet refuses other flags itself.
  if (b0 !== 0x10) return undefined;
  const end = off + length;
  let pos = off;
  let protocolId: string;
  // Protocol Name [MQTT-3.1.2-1]: "MQTT" (3.1.1, 5.0) or "MQIsdp" (3.1).
  if (pos + 6 <= end && frame[pos] === 0 && frame[pos + 1] === 4 && frame[pos + 2] === 0x4d && frame[pos + 3] === 0x51 && frame[pos + 4] === 0x54 && frame[pos + 5] === 0x54) {
    protocolId = 'MQTT';
    pos += 6;
  } else if (pos + 8 <= end && frame[pos] === 0 && frame[pos + 1] === 6 && frame.toString('latin1', pos + 2, pos + 8) === 'MQIsdp') {
    protocolId = 'MQIsdp';
    pos += 8;
  } else return undefined;
  // Protocol Level, Connect Flags, Keep Alive.
  if (pos + 4 > end) return undefined;
  const protocolVersion = frame[pos]!;
  if (protocolVersion !== 3 && protocolVersion !== 4 && protocolVersion !== 5) return undefined;
  const flags = frame[pos + 1]!;
  // Reserved flag 0 [MQTT-3.1.2-3]; Will QoS 3, or Will QoS / Will Retain without the Will Flag
  // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]: mqtt-packet's (or the channel's) refusal.
  if ((flags & 0x01) !== 0) return undefined;
  const will = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & 0x20) !== 0;
  if (willQos === 3 || (!will && (willQos !== 0 || willRetain))) return undefined;
  const clean = (flags & 0x02) !== 0;
  const keepalive = (frame[pos + 2]! << 8) | frame[pos + 3]!;
  pos += 4;
  if (protocolVersion === 5) {
    if (pos >= end || frame[pos] !== 0) return undefined; // properties: mqtt-packet
    pos++;
  }
  // Client Identifier [MQTT-3.1.3-3].
  let e = fieldEnd(frame, pos, end);
  if (e < 0) return undefined;
  const clientId = readUtf8(frame, pos + 2, e);
  if (clientId === undefined) return undefined;
  pos = e;
  let willObject: Record<string, unknown> | undefined;
  if (will) {
    if (protocolVersion === 5) {
      if (pos >= end || frame[pos] !== 0) return undefined; // will properties: mqtt-packet
      pos++;
    }
    e = fieldEnd(frame, pos, end);
    if (e < 0) return undefined;
    const topic = readUtf8(frame, pos + 2, e);
    if (topic === undefined) return undefined;
    pos = e;
    e = fieldEnd(frame, pos, end);
    if (e < 0) return undefined;
    // Same key order as mqtt-packet; the payload is kept for the session (see the note at the top).
    willObject = { retain: willRetain, qos: willQos, topic, payload: keptBytes(frame, pos + 2, e, true) };
    pos = e;
  }
  let username: string | undefined;
  if ((flags & 0x80) !== 0) {
    e = fieldEnd(frame, pos, end);
    if (e < 0) return undefined;
    username = readUtf8(frame, pos + 2, e);
    if (username === undefined) return undefined;
    pos = e;
  }
  let password: Buffer | undefined;
  if ((flags & 0x40) !== 0) {
    e = fieldEnd(frame, pos, end);
    if (e < 0) return undefined;
    password = frame.subarray(pos + 2, e);
    pos = e;
  }
  // mqtt-packet ignores bytes after the last field; whether that is acceptable is its call.
  if (pos !== end) return undefined;
  // mqtt-packet's key order: its Packet constructor, then protocolId, protocolVersion, will,
  // clean, keepalive, clientId, username, password.
  const p: Record<string, unknown> = { cmd: 'connect', retain: false, qos: 0, dup: false, length, topic: null, payload: null, protocolId, protocolVersion };
  if (willObject !== undefined) p.will = willObject;
  p.clean = clean;
  p.keepalive = keepalive;
  p.clientId = clientId;
  if (username !== undefined) p.username = username;
  if (password !== undefined) p.password = password;
  return p as unknown as Packet;
}

/**
 * The last topic name a connection's PUBLISH carried (held by its Decoder). Devices publish to
 * the same few topics over and over: when the next topic's bytes are the same, the same string
 * is returned, which saves decoding it, a string per message, and (since a string caches its
 * hash) re-hashing it for the routing cache. Only ASCII topics are kept: for them equal bytes
 * mean an equal string.
 */
export interface TopicMemo {
  lastTopic: string | undefined;
}

/** True when bytes [pos, end) of `frame` are the characters of the ASCII string `s`. */
function sameAscii(frame: Buffer, pos: number, end: number, s: string): boolean {
  if (end - pos !== s.length) return false;
  for (let i = 0; pos < end; pos++, i++) if (frame[pos] !== s.charCodeAt(i)) return false;
  return true;
}

function decodePublish(frame: Buffer, b0: number, off: number, length: number, version: number, memo: TopicMemo | undefined): FastResult {
  const qos = (b0 >> 1) & 3;
  // A PUBLISH MUST NOT have both QoS bits set to 1 [MQTT-3.3.1-4]: Malformed Packet.
  if (qos === 3) return QOS_3;
  const end = off + length;
  // Topic Name: UTF-8 Encoded String, two-byte length then the bytes (5.0 §3.3.2.1, §1.5.4);
  // a length running past the packet is malformed.
  if (length < 2) return CANNOT_PARSE_TOPIC;
  let pos = off + 2;
  const topicEnd = pos + ((frame[off]! << 8) | frame[off + 1]!);
  if (topicEnd > end) return CANNOT_PARSE_TOPIC;
  const last = memo?.lastTopic;
  let topic: string | undefined;
  if (last !== undefined && sameAscii(frame, pos, topicEnd, last)) topic = last;
  else {
    topic = readUtf8(frame, pos, topicEnd);
    // Well-formed UTF-8 [MQTT-1.5.4-1], no U+0000 [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-1], [MQTT-1.5.3-2]).
    if (topic === undefined) return utf8Problem(frame, pos, topicEnd);
    // As many characters as bytes: all ASCII (any other UTF-8 character takes more bytes).
    if (memo !== undefined && topic.length === topicEnd - pos && topic.length > 0) memo.lastTopic = topic;
  }
  pos = topicEnd;
  let messageId = 0;
  if (qos !== 0) {
    // QoS 1 and 2 carry a Packet Identifier (5.0 §2.2.1 Table 2-3; 3.1.1 §2.3.1 Table 2.5).
    if (pos + 2 > end) return MISSING_PACKET_ID;
    messageId = (frame[pos]! << 8) | frame[pos + 1]!;
    pos += 2;
  }
  let properties: Record<string, unknown> | undefined;
  if (version === 5) {
    // Property Length, a Variable Byte Integer (5.0 §3.3.2.3.1, §1.5.5). Missing altogether, or
    // cut off, mqtt-packet reads as "no properties"; a fifth byte it refuses: its call either way.
    let propLength = 0;
    for (let mul = 1, n = 0; ; mul *= 128) {
      if (pos >= end) return undefined;
      const b = frame[pos++]!;
      propLength += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) break;
      if (++n === 4) return undefined;
    }
    if (propLength !== 0) {
      const propEnd = pos + propLength;
      if (propEnd > end) return undefined;
      properties = readPublishProperties(frame, pos, propEnd, qos !== 0 || (b0 & 1) !== 0);
      if (properties === undefined) return undefined;
      pos = propEnd;
    }
  }
  // A view, or a copy when the message may be kept: see the note at the top.
  const payload = keptBytes(frame, pos, end, qos !== 0 || (b0 & 1) !== 0);
  const retain = (b0 & 1) !== 0;
  const dup = (b0 & 8) !== 0;
  // Same keys, same order as mqtt-packet: its Packet constructor, then messageId, properties.
  let p: Record<string, unknown>;
  if (qos === 0) p = { cmd: 'publish', retain, qos, dup, length, topic, payload };
  else p = { cmd: 'publish', retain, qos, dup, length, topic, payload, messageId };
  if (properties !== undefined) p.properties = properties;
  return p as unknown as Packet;
}

/**
 * PUBLISH properties (5.0 §3.3.2.3) between `pos` and `end`, as mqtt-packet builds them; undefined
 * for anything it should decide itself: an identifier PUBLISH does not carry, a value running
 * past the Property Length, a property repeated that may not be, a string that is not strict
 * UTF-8.
 */
function readPublishProperties(buf: Buffer, pos: number, end: number, kept: boolean): Record<string, unknown> | undefined {
  const props: Record<string, unknown> = {};
  while (pos < end) {
    const id = buf[pos++]!;
    switch (id) {
      case 0x01: {
        // Payload Format Indicator, Byte; mqtt-packet reports it as a boolean.
        if (pos >= end || props.payloadFormatIndicator !== undefined) return undefined;
        props.payloadFormatIndicator = buf[pos++] !== 0;
        break;
      }
      case 0x02: {
        // Message Expiry Interval, Four Byte Integer.
        if (pos + 4 > end || props.messageExpiryInterval !== undefined) return undefined;
        props.messageExpiryInterval = buf[pos]! * 0x1000000 + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!);
        pos += 4;
        break;
      }
      case 0x03:
      case 0x08: {
        // Content Type, Response Topic: UTF-8 Encoded Strings.
        const name = id === 0x03 ? 'contentType' : 'responseTopic';
        if (pos + 2 > end || props[name] !== undefined) return undefined;
        const s = pos + 2;
        const e = s + ((buf[pos]! << 8) | buf[pos + 1]!);
        if (e > end) return undefined;
        const v = readUtf8(buf, s, e);
        if (v === undefined) return undefined;
        props[name] = v;
        pos = e;
        break;
      }
      case 0x09: {
        // Correlation Data, Binary Data (a view into the frame, like mqtt-packet's, unless kept).
        if (pos + 2 > end || props.correlationData !== undefined) return undefined;
        const s = pos + 2;
        const e = s + ((buf[pos]! << 8) | buf[pos + 1]!);
        if (e > end) return undefined;
        props.correlationData = keptBytes(buf, s, e, kept);
        pos = e;
        break;
      }
      case 0x0b: {
        // Subscription Identifier, Variable Byte Integer; may repeat (5.0 §3.3.2.3.8). mqtt-packet
        // turns repeats into an array, testing the first value for truth: kept as is.
        let v = 0;
        for (let mul = 1, n = 0; ; mul *= 128) {
          if (pos >= end) return undefined;
          const b = buf[pos++]!;
          v += (b & 0x7f) * mul;
          if ((b & 0x80) === 0) break;
          if (++n === 4) return undefined;
        }
        const cur = props.subscriptionIdentifier as number | number[] | undefined;
        if (cur) {
          if (Array.isArray(cur)) cur.push(v);
          else props.subscriptionIdentifier = [cur, v];
        } else props.subscriptionIdentifier = v;
        break;
      }
      case 0x23: {
        // Topic Alias, Two Byte Integer.
        if (pos + 2 > end || props.topicAlias !== undefined) return undefined;
        props.topicAlias = (buf[pos]! << 8) | buf[pos + 1]!;
        pos += 2;
        break;
      }
      case 0x26: {
        // User Property, UTF-8 String Pair; may repeat, order kept (5.0 §3.3.2.3.7). mqtt-packet
        // collects them in a null-prototype object, a repeated name becoming an array.
        if (pos + 2 > end) return undefined;
        const ns = pos + 2;
        const ne = ns + ((buf[pos]! << 8) | buf[pos + 1]!);
        if (ne + 2 > end) return undefined;
        const vs = ne + 2;
        const ve = vs + ((buf[ne]! << 8) | buf[ne + 1]!);
        if (ve > end) return undefined;
        const name = userPropertyName(buf, ns, ne);
        if (name === undefined) return undefined;
        const value = readUtf8(buf, vs, ve);
        if (value === undefined) return undefined;
        let up = props.userProperties as Record<string, string | string[]> | undefined;
        if (up === undefined) props.userProperties = up = Object.create(null) as Record<string, string | string[]>;
        const cur = up[name];
        if (cur) {
          if (Array.isArray(cur)) cur.push(value);
          else up[name] = [cur, value];
        } else up[name] = value;
        pos = ve;
        break;
      }
      default:
        // Property identifier 0, unknown, or not a PUBLISH property: mqtt-packet decides.
        return undefined;
    }
  }
  return props;
}

/**
 * Recently seen User Property names, in 16 slots chosen by a hash of their bytes. A name is a key
 * of the (null-prototype) userProperties object, and V8 internalizes every fresh key string: about
 * a microsecond per message, more than the rest of the PUBLISH. Returning the same string object
 * for the same bytes skips that. The bytes are copied, so no frame is pinned by the cache.
 */
const nameBytes: Array<Buffer | undefined> = new Array<Buffer | undefined>(16).fill(undefined);
const nameStrings: string[] = new Array<string>(16).fill('');

function userPropertyName(buf: Buffer, start: number, end: number): string | undefined {
  const len = end - start;
  if (len === 0) return '';
  if (len > 64) return readUtf8(buf, start, end);
  const slot = (len * 31 + buf[start]! * 7 + buf[end - 1]!) & 15;
  const cached = nameBytes[slot];
  if (cached !== undefined && cached.length === len) {
    let i = 0;
    while (i < len && cached[i] === buf[start + i]) i++;
    if (i === len) return nameStrings[slot];
  }
  const name = readUtf8(buf, start, end);
  if (name !== undefined) {
    nameBytes[slot] = Buffer.from(buf.subarray(start, end));
    nameStrings[slot] = name;
  }
  return name;
}

function decodeAck(frame: Buffer, b0: number, off: number, length: number, version: number): FastResult {
  const type = b0 >> 4;
  const cmd = ACK_NAMES[type]!;
  if (type === 6) {
    // PUBREL fixed header flags MUST be 0010 [MQTT-3.6.1-1]; anything else is malformed.
    if ((b0 & 0x0f) !== 2) return 'Invalid header flag bits, must be 0x2 for pubrel packet';
  } else if ((b0 & 0x0f) !== 0) {
    // Reserved flags of PUBACK, PUBREC, PUBCOMP are 0000 [MQTT-2.2.2-1] [MQTT-2.2.2-2] (5.0: [MQTT-2.1.3-1]).
    return `Invalid header flag bits, must be 0x0 for ${cmd} packet`;
  }
  // Every ack starts with the Packet Identifier it acknowledges (5.0 §3.4.2, [MQTT-2.2.1-5]).
  if (length < 2) return MISSING_PACKET_ID;
  const messageId = (frame[off]! << 8) | frame[off + 1]!;
  const qos = type === 6 ? 1 : 0;
  if (version !== 5) {
    // 3.1 / 3.1.1: Remaining Length 2; mqtt-packet ignores any further bytes, and so do we.
    return { cmd, retain: false, qos, dup: false, length, topic: null, payload: null, messageId } as unknown as Packet;
  }
  // 5.0: Remaining Length 2 means Reason Code 0x00 and no properties (5.0 §3.4.2.1).
  let reasonCode = 0;
  if (length > 2) {
    reasonCode = frame[off + 2]!;
    if ((type <= 5 ? PUBACK_PUBREC_CODES : PUBREL_PUBCOMP_CODES)[reasonCode] === 0) return `Invalid ${cmd} reason code`;
    // Remaining Length 3: no Property Length (5.0 §3.4.2.2.1). 4 with Property Length 0: none.
    // Properties (in practice a Reason String or User Properties, on errors only): mqtt-packet.
    if (length > 3 && (length !== 4 || frame[off + 3] !== 0)) return undefined;
  }
  return { cmd, retain: false, qos, dup: false, length, topic: null, payload: null, messageId, reasonCode } as unknown as Packet;
}

function decodeDisconnect(frame: Buffer, b0: number, off: number, length: number, version: number): FastResult {
  // Reserved flags 0000 [MQTT-3.14.1-1] (5.0: [MQTT-3.14.1-1]).
  if ((b0 & 0x0f) !== 0) return 'Invalid header flag bits, must be 0x0 for disconnect packet';
  if (version !== 5) {
    // 3.1.1 DISCONNECT has no variable header; mqtt-packet ignores any body.
    return { cmd: 'disconnect', retain: false, qos: 0, dup: false, length, topic: null, payload: null } as unknown as Packet;
  }
  // Remaining Length 0: Normal disconnection, no properties (5.0 §3.14.2.1).
  let reasonCode = 0;
  if (length > 0) {
    reasonCode = frame[off]!;
    if (DISCONNECT_CODES[reasonCode] === 0) return 'Invalid disconnect reason code';
    // Remaining Length 1: no Property Length; 2 with Property Length 0: none. Else mqtt-packet.
    if (length > 1 && (length !== 2 || frame[off + 1] !== 0)) return undefined;
  }
  return { cmd: 'disconnect', retain: false, qos: 0, dup: false, length, topic: null, payload: null, reasonCode } as unknown as Packet;
}
