/**
 * Pure MQTT 3.1 / 3.1.1 / 5.0 codec. Wraps `mqtt-packet` (the Node ecosystem's wire-format
 * library) and adds what a broker needs around it: framing by Remaining Length before parsing, an
 * inbound size limit checked as soon as the fixed header is read (before the body is buffered),
 * strict UTF-8 (utf8.ts), a Packet Identifier cut off by the end of its packet refused, the switch
 * to the connection's protocol version once CONNECT is decoded, and errors turned into reason
 * codes.
 *
 * The hot packets (PUBLISH, the four acks, PINGREQ/PINGRESP, DISCONNECT) are decoded and encoded
 * by hand, and so is CONNECT without properties (fast-decode.ts, fast-encode.ts: why is explained
 * there); their results are the ones mqtt-packet gives, and every form they do not fully handle
 * goes to mqtt-packet as before.
 */
import { Buffer } from 'node:buffer';
import mqttPacket from 'mqtt-packet';

// mqtt-packet's generate builds, on its first call, a cache of 65,536 two-byte Buffers for packet
// ids and lengths (about 6 MB that stays): the hot packets are encoded here instead, and the few
// packets left to mqtt-packet do not need it.
(mqttPacket as unknown as { writeToStream: { cacheNumbers: boolean } }).writeToStream.cacheNumbers = false;
import type { IConnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { FrameReader } from './framer.js';
import { decodeFast, keptBytes, MISSING_PACKET_ID, type TopicMemo } from './fast-decode.js';
import { encodeAckFast, encodeEmpty, encodePublishFast } from './fast-encode.js';
export { fourByteAckHeader } from './fast-encode.js';
export { VIEW_PIN_SLACK } from './framer.js';
export { keptBytes } from './fast-decode.js';
import { RC } from './reason-codes.js';
import { readUtf8, utf8Problem } from './utf8.js';

export type {
  Packet,
  IConnectPacket,
  IConnackPacket,
  IPublishPacket,
  IPubackPacket,
  IPubrecPacket,
  IPubrelPacket,
  IPubcompPacket,
  ISubscribePacket,
  ISubackPacket,
  IUnsubscribePacket,
  IUnsubackPacket,
  IPingreqPacket,
  IPingrespPacket,
  IDisconnectPacket,
  IAuthPacket,
  ISubscription,
} from 'mqtt-packet';

export type ProtocolVersionNumber = 3 | 4 | 5;

export interface DecodeError {
  reasonCode: number;
  message: string;
}

export interface DecoderHandlers {
  /**
   * One packet. Bytes that will be kept do not pin the chunk they came in (fast-decode.ts
   * `keptBytes`): a QoS 1/2 or retained PUBLISH's payload and Correlation Data, and a will's
   * payload, pin at most VIEW_PIN_SLACK bytes beyond their length. Other Binary Data, and a
   * QoS 0 payload, may be views into the chunk.
   */
  packet(packet: Packet): void;
  error(err: DecodeError): void;
  /**
   * Optional: a PUBACK (`b0` 0x40) or PUBCOMP (0x70) of Remaining Length 2, that is with reason
   * Success in every version, as its packet identifier, without a packet object (one per QoS 1
   * message otherwise). Returns false to get it through `packet` after all.
   */
  ack?(b0: number, packetId: number): boolean;
}

export interface DecoderOptions {
  /**
   * false: decode every packet with mqtt-packet, skipping the hand-written fast path (for the
   * equivalence tests and the micro-benchmark). Default true.
   */
  fastPath?: boolean;
}

// Decoder.flags: protocol version in the low 3 bits, then the bits below.
const VERSION_BITS = 0x07;
/** The CONNECT had the bridge bit in its protocol level (mqtt-packet's bridgeMode). */
const BRIDGE = 0x08;
/** DecoderOptions.fastPath === false. */
const NO_FAST_PATH = 0x10;

/**
 * Incremental decoder for one connection. Feed it bytes with `push`; it calls `handlers.packet`
 * for each complete packet in order and `handlers.error` once on the first malformed or oversized
 * packet, after which it ignores further input.
 *
 * The Framer cuts the stream into whole packets first (see framer.ts for why); each packet is
 * then decoded on its own, so no field can borrow bytes from the next packet, and the result is
 * the same however the bytes were split into chunks. Hot packets go through the hand-written
 * fast path (fast-decode.ts); the rest, and whatever the fast path leaves, through mqtt-packet.
 *
 * Kept small (an idle broker holds one per connection): the framing state, the handlers and one
 * number of flags. There is no mqtt-packet parser per connection: since a whole packet is parsed
 * synchronously in one call, one parser is shared by the whole process (see `decodeWithMqttPacket`).
 */
export class Decoder extends FrameReader implements TopicMemo {
  private flags: number;
  /** See TopicMemo (fast-decode.ts). */
  lastTopic: string | undefined = undefined;

  constructor(
    private readonly handlers: DecoderHandlers,
    /** Maximum Packet Size the broker accepts, in bytes (whole packet) [MQTT-3.2.2-15]. */
    maxPacketSize: number,
    options?: DecoderOptions,
  ) {
    super(maxPacketSize);
    // Until CONNECT is decoded we do not know the version; mqtt-packet reads CONNECT in any
    // version because the version is inside the packet.
    this.flags = 4 | (options?.fastPath === false ? NO_FAST_PATH : 0);
  }

  set protocolVersion(v: ProtocolVersionNumber) {
    this.flags = (this.flags & ~VERSION_BITS) | v;
  }

  setMaxPacketSize(n: number): void {
    this.maxPacketSize = n;
  }

  protected override onFrame(buf: Buffer, start: number, total: number, remainingLength: number): void {
    if (this.failed) return;
    const flags = this.flags;
    const version = flags & VERSION_BITS;
    if (remainingLength === 2 && (flags & NO_FAST_PATH) === 0 && this.handlers.ack !== undefined) {
      const b0 = buf[start]!;
      if (b0 === 0x40 || b0 === 0x70) {
        const off = start + total - 2;
        if (this.handlers.ack(b0, (buf[off]! << 8) | buf[off + 1]!)) return;
      }
    }
    let r = (flags & NO_FAST_PATH) === 0 ? decodeFast(buf, start, total, remainingLength, version, this) : undefined;
    if (r === undefined) {
      r = decodeWithMqttPacket(buf.subarray(start, start + total), version, (flags & BRIDGE) !== 0);
      if (typeof r !== 'string') keepOwnBytes(r);
    }
    if (typeof r !== 'string' && r.cmd === 'connect' && r.protocolVersion) {
      // Later packets of this connection are decoded in the version CONNECT named (and, as
      // mqtt-packet did with its per-connection settings, in bridge mode if it asked for it).
      const bridge = (r as IConnectPacket & { bridgeMode?: boolean }).bridgeMode ? BRIDGE : 0;
      this.flags = (this.flags & ~(VERSION_BITS | BRIDGE)) | r.protocolVersion | bridge;
    }
    if (typeof r === 'string') {
      this.fail(errorReason(r), r);
      return;
    }
    try {
      this.handlers.packet(r);
    } catch (err) {
      // A handler fault must not escape into the socket's data event.
      this.fail(RC.ImplementationSpecificError, (err as Error).message);
    }
  }

  protected override onFramingError(kind: 'malformed' | 'too-large', message: string): void {
    this.fail(kind === 'too-large' ? RC.PacketTooLarge : RC.MalformedPacket, message);
  }

  private fail(reasonCode: number, message: string): void {
    if (this.failed) return;
    this.stop();
    this.handlers.error({ reasonCode, message });
  }
}

/** The fast path's rule for bytes that will be kept (see DecoderHandlers.packet), applied to a
 *  packet mqtt-packet decoded: its Buffers are views into the frame. */
function keepOwnBytes(p: Packet): void {
  const own = (b: Buffer) => keptBytes(b, 0, b.length, true);
  if (p.cmd === 'publish') {
    if (p.qos === 0 && !p.retain) return;
    if (Buffer.isBuffer(p.payload)) p.payload = own(p.payload);
    const props = p.properties;
    // (A repeated property is a list in mqtt-packet's output: left as it is.)
    if (Buffer.isBuffer(props?.correlationData)) props.correlationData = own(props.correlationData);
  } else if (p.cmd === 'connect' && p.will) {
    if (Buffer.isBuffer(p.will.payload)) p.will.payload = own(p.will.payload);
    const props = p.will.properties;
    if (Buffer.isBuffer(props?.correlationData)) props.correlationData = own(props.correlationData);
  }
}

/**
 * Decodes exactly one whole packet (fixed header included), as a Decoder in protocol version
 * `version` would: the packet, or the error. For tests and tools; a connection uses `Decoder`.
 */
export function decodeFrame(frame: Buffer, version: ProtocolVersionNumber, options?: DecoderOptions): Packet | DecodeError {
  let out: Packet | DecodeError | undefined;
  const d = new Decoder({ packet: (p) => (out = p), error: (e) => (out = e) }, Number.MAX_SAFE_INTEGER, options);
  d.protocolVersion = version;
  d.push(frame);
  return out ?? { reasonCode: RC.MalformedPacket, message: 'incomplete packet' };
}

// ------------------------------------------------------------------ the shared mqtt-packet parser

type MqttParser = ReturnType<typeof mqttPacket.parser>;
type ParserInternals = {
  settings: { protocolVersion: number; bridgeMode?: boolean };
  _pos: number;
  _list: { length: number; slice(a: number, b: number): Buffer };
  packet: { length: number };
  _parseNum(): number;
  _emitError(err: Error): void;
  _parseString: () => string | null;
};

/**
 * One mqtt-packet parser for the whole process, created on first use. Sharing is sound because
 * the Framer hands it exactly one whole packet per `parse` call, which runs synchronously and
 * leaves the parser empty (state counter 0, no buffered bytes) when the packet is emitted; its
 * listeners only record the outcome, so no caller code runs while it parses. The only
 * per-connection input, the protocol version (and bridge mode), is set before every call. After
 * an error or an exception its internal state may be half-way through a packet: it is discarded
 * and the next packet gets a fresh one.
 */
let sharedParser: MqttParser | undefined;
let parsedPacket: Packet | undefined;
let parseError: string | undefined;

/** mqtt-packet's parser settings for version v (| 8 in bridge mode); it reads nothing else there. */
const SETTINGS = Array.from({ length: 16 }, (_, i) => (i & BRIDGE ? { protocolVersion: i & VERSION_BITS, bridgeMode: true } : { protocolVersion: i }));

function onParsedPacket(p: Packet): void {
  parsedPacket = p;
}

function onParseError(err: Error): void {
  // mqtt-packet may report a second error for the same packet: the first is the reason.
  parseError ??= err.message;
}

function getSharedParser(): MqttParser {
  if (sharedParser) return sharedParser;
  const p = mqttPacket.parser({ protocolVersion: 4 });
  p.on('packet', onParsedPacket);
  p.on('error', onParseError);
  strictStrings(p);
  return (sharedParser = p);
}

/** The packet mqtt-packet decodes from one whole frame, or an error message. */
function decodeWithMqttPacket(frame: Buffer, version: number, bridge: boolean): Packet | string {
  // AUTH with Remaining Length 0 means reason 0x00 Success, no properties (MQTT 5.0 §3.15.2.1);
  // mqtt-packet refuses that short form.
  if (frame.length === 2 && frame[0] === 0xf0 && version === 5) {
    return { cmd: 'auth', retain: false, qos: 0, dup: false, length: 0, reasonCode: 0 } as unknown as Packet;
  }
  const parser = getSharedParser();
  const internals = parser as unknown as ParserInternals;
  internals.settings = SETTINGS[(bridge ? BRIDGE : 0) | version]!;
  parsedPacket = undefined;
  parseError = undefined;
  try {
    parser.parse(frame);
  } catch (err) {
    // mqtt-packet throws on a few inputs instead of emitting (e.g. invalid property types).
    sharedParser = undefined;
    return parseError ?? (err as Error).message;
  }
  const packet = parsedPacket as Packet | undefined; // set by onParsedPacket during parse
  parsedPacket = undefined;
  if (parseError !== undefined) {
    sharedParser = undefined;
    return parseError;
  }
  if (internals._list.length !== 0) sharedParser = undefined; // cannot happen with whole frames; be sure
  if (!packet) {
    // The packet's fields need more bytes than its Remaining Length gives.
    sharedParser = undefined;
    return 'packet shorter than its fields';
  }
  const bad = truncatedProperty((packet as { properties?: object }).properties)
    ?? (packet.cmd === 'connect' ? truncatedProperty(packet.will?.properties) : undefined);
  if (bad) return `property ${bad} runs past the end of the packet`;
  // mqtt-packet reads a Packet Identifier cut off by the end of the packet as -1 and accepts the
  // packet; it is malformed (5.0 §2.2.1 Table 2-3, 3.1.1 §2.3.1 Table 2.5: PUBLISH QoS > 0 and
  // the acks carry one).
  if ((packet as { messageId?: number }).messageId === -1) return MISSING_PACKET_ID;
  return packet;
}

/** Protocol Error rather than Malformed Packet for values the spec calls a Protocol Error. */
function errorReason(message: string): number {
  // Retain Handling 3 is a Protocol Error (MQTT 5.0 §3.8.3.1).
  if (/retain handling/i.test(message)) return RC.ProtocolError;
  return RC.MalformedPacket;
}

/**
 * mqtt-packet reads a property value past the end of the packet as null (strings, binary data)
 * or -1 (integers) instead of failing; such a packet is malformed.
 */
function truncatedProperty(props: object | undefined): string | undefined {
  if (!props) return undefined;
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || (typeof value === 'number' && value < 0)) return name;
    if (Array.isArray(value) && value.some((v) => v === null || (typeof v === 'number' && v < 0))) return name;
  }
  return undefined;
}

/**
 * mqtt-packet decodes strings leniently (ill-formed bytes become U+FFFD). A UTF-8 Encoded String
 * MUST be well-formed, without surrogates [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]), and MUST NOT
 * contain U+0000 [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-2]); the receiver closes the connection
 * (v5: Malformed Packet). This replaces the parser's string reader with the strict one the fast
 * path uses too (utf8.ts).
 */
function strictStrings(parser: unknown): void {
  const p = parser as ParserInternals;
  p._parseString = function (this: ParserInternals): string | null {
    const length = this._parseNum();
    const end = length + this._pos;
    if (length === -1 || end > this._list.length || end > this.packet.length) return null;
    const bytes = this._list.slice(this._pos, end);
    const result = readUtf8(bytes, 0, bytes.length);
    if (result === undefined) {
      this._emitError(new Error(utf8Problem(bytes, 0, bytes.length)));
      return null;
    }
    this._pos += length;
    return result;
  };
}

// ------------------------------------------------------------------------------------ encoding

/** Encodes a packet for the given protocol version. */
export function encode(packet: Packet, protocolVersion: ProtocolVersionNumber): Buffer {
  const fast = encodeFast(packet, protocolVersion);
  if (fast !== undefined) return fast;
  if (protocolVersion === 5 && isAck(packet) && packet.reasonCode === undefined && packet.properties === undefined) {
    // A v5 ack with reason 0x00 and no properties goes out in the 2-byte short form (MQTT 5.0
    // §3.4.2.1). mqtt-packet writes the long form when reasonCode is absent, and common clients
    // (Paho Python 1.6) fail to parse a long-form PUBREL.
    packet = { ...packet, reasonCode: 0 };
  }
  return mqttPacket.generate(packet, { protocolVersion });
}

/** The hand-written encoders (fast-encode.ts); undefined: mqtt-packet encodes it. */
function encodeFast(packet: Packet, version: number): Buffer | undefined {
  switch (packet.cmd) {
    case 'publish':
      return encodePublishFast(packet.topic, packet.payload, packet.qos, packet.retain, packet.dup, packet.messageId, version, packet.properties);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return encodeAckFast(packet.cmd, packet.messageId, packet.reasonCode, packet.properties, (packet as { dup?: boolean }).dup, version);
    case 'connack': {
      // 3.1 / 3.1.1: four fixed bytes (every connection sends one; 5.0 carries properties and
      // goes to mqtt-packet).
      const rc = packet.returnCode;
      if (version === 5 || typeof rc !== 'number' || !Number.isInteger(rc) || rc < 0 || rc > 255) return undefined;
      const b = Buffer.allocUnsafe(4);
      b[0] = 0x20;
      b[1] = 2;
      b[2] = packet.sessionPresent ? 1 : 0;
      b[3] = rc;
      return b;
    }
    case 'pingresp':
      return encodeEmpty(13);
    case 'pingreq':
      return encodeEmpty(12);
    default:
      return undefined;
  }
}

/** PUBLISH properties the fan-out encoder takes (those a broker forwards or sets). */
export type PublishProperties = NonNullable<IPublishPacket['properties']>;

/**
 * Encodes a PUBLISH from its fields, for fan-out loops: the same bytes as
 * `encode({ cmd: 'publish', topic, payload, qos, retain, dup, messageId: packetId, properties }, version)`
 * (and as mqtt-packet's generate), without building a packet object per subscriber.
 *
 * - The packet is written into ONE `Buffer.allocUnsafe` of its exact size (no concat).
 * - The UTF-8 bytes of the last topic are cached: call it consecutively with the same topic string
 *   (one message to many subscribers) and the topic is transcoded once, then only copied. Any
 *   other call order is still correct, just without that saving.
 * - `packetId` is written when `qos` > 0 (a non-zero id unused on that session [MQTT-2.2.1-4]).
 * - `properties` (5.0 only, ignored otherwise): messageExpiryInterval, subscriptionIdentifier (a
 *   number, or an array for several matching subscriptions [MQTT-3.3.4-4]), payloadFormatIndicator,
 *   contentType, responseTopic, correlationData, userProperties, topicAlias are encoded here;
 *   anything else, or a value of the wrong type, goes through mqtt-packet (which may throw, as
 *   `encode` does).
 * - The returned Buffer is the caller's; a payload Buffer is copied into it, not referenced.
 */
export function encodePublish(
  topic: string,
  payload: Buffer | string,
  qos: 0 | 1 | 2,
  retain: boolean,
  dup: boolean,
  packetId: number | undefined,
  version: ProtocolVersionNumber,
  properties?: PublishProperties,
): Buffer {
  return (
    encodePublishFast(topic, payload, qos, retain, dup, packetId, version, properties) ??
    mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain, dup, messageId: packetId, properties }, { protocolVersion: version })
  );
}

function isAck(p: Packet): p is Packet & { cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'; reasonCode?: number; properties?: object } {
  return p.cmd === 'puback' || p.cmd === 'pubrec' || p.cmd === 'pubrel' || p.cmd === 'pubcomp';
}

/** Size in bytes of a variable byte integer [MQTT-1.5.5]. */
export function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}
