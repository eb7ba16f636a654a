/**
 * Pure MQTT 3.1 / 3.1.1 / 5.0 codec. Wraps `mqtt-packet` (the Node ecosystem's wire-format
 * library) and adds what a broker needs around it: framing by Remaining Length before parsing, an
 * inbound size limit checked as soon as the fixed header is read (before the body is buffered),
 * strict UTF-8, the switch to the connection's protocol version once CONNECT is decoded, and
 * errors turned into reason codes.
 */
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { Framer } from './framer.js';
import { RC } from './reason-codes.js';

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
  packet(packet: Packet): void;
  error(err: DecodeError): void;
}

/**
 * Incremental decoder for one connection. Feed it bytes with `push`; it calls `handlers.packet`
 * for each complete packet in order and `handlers.error` once on the first malformed or oversized
 * packet, after which it ignores further input.
 *
 * The Framer cuts the stream into whole packets first (see framer.ts for why); mqtt-packet then
 * parses exactly one packet at a time, so no field can borrow bytes from the next packet, and the
 * result is the same however the bytes were split into chunks.
 */
export class Decoder {
  private readonly parser: ReturnType<typeof mqttPacket.parser>;
  private readonly framer: Framer;
  private failed = false;
  private version: ProtocolVersionNumber = 4;
  private emitted: Packet | undefined;

  constructor(
    private readonly handlers: DecoderHandlers,
    /** Maximum Packet Size the broker accepts, in bytes (whole packet) [MQTT-3.2.2-15]. */
    maxPacketSize: number,
  ) {
    // Until CONNECT is decoded we do not know the version; mqtt-packet reads CONNECT in any
    // version because the version is inside the packet.
    this.parser = mqttPacket.parser({ protocolVersion: 4 });
    this.parser.on('packet', (packet: Packet) => {
      this.emitted = packet;
    });
    this.parser.on('error', (err: Error) => this.fail(errorReason(err.message), err.message));
    strictStrings(this.parser);
    this.framer = new Framer(
      {
        frame: (bytes) => this.onFrame(bytes),
        error: (kind, message) => this.fail(kind === 'too-large' ? RC.PacketTooLarge : RC.MalformedPacket, message),
      },
      maxPacketSize,
    );
  }

  set protocolVersion(v: ProtocolVersionNumber) {
    this.version = v;
    (this.parser as unknown as { settings: { protocolVersion: number } }).settings.protocolVersion = v;
  }

  setMaxPacketSize(n: number): void {
    this.framer.maxPacketSize = n;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    this.framer.push(chunk);
  }

  private onFrame(bytes: Buffer): void {
    if (this.failed) return;
    // AUTH with Remaining Length 0 means reason 0x00 Success, no properties (MQTT 5.0 §3.15.2.1);
    // mqtt-packet refuses that short form.
    if (bytes.length === 2 && bytes[0] === 0xf0 && this.version === 5) {
      this.deliver({ cmd: 'auth', retain: false, qos: 0, dup: false, length: 0, reasonCode: 0 } as unknown as Packet);
      return;
    }
    this.emitted = undefined;
    try {
      this.parser.parse(bytes);
    } catch (err) {
      // mqtt-packet throws on a few inputs instead of emitting (e.g. invalid property types).
      this.fail(RC.MalformedPacket, (err as Error).message);
      return;
    }
    if (this.failed) return;
    const packet = this.emitted as Packet | undefined;
    if (!packet) {
      // The packet's fields need more bytes than its Remaining Length gives.
      this.fail(RC.MalformedPacket, 'packet shorter than its fields');
      return;
    }
    const bad = truncatedProperty((packet as { properties?: object }).properties)
      ?? (packet.cmd === 'connect' ? truncatedProperty(packet.will?.properties) : undefined);
    if (bad) {
      this.fail(RC.MalformedPacket, `property ${bad} runs past the end of the packet`);
      return;
    }
    if (packet.cmd === 'connect' && packet.protocolVersion) {
      // Later packets of this connection are decoded in the version CONNECT named.
      this.protocolVersion = packet.protocolVersion as ProtocolVersionNumber;
    }
    this.deliver(packet);
  }

  private deliver(packet: Packet): void {
    try {
      this.handlers.packet(packet);
    } catch (err) {
      // A handler fault must not escape into the socket's data event.
      this.fail(RC.ImplementationSpecificError, (err as Error).message);
    }
  }

  private fail(reasonCode: number, message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.handlers.error({ reasonCode, message });
  }
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

/** Encodes a packet for the given protocol version. */
export function encode(packet: Packet, protocolVersion: ProtocolVersionNumber): Buffer {
  if (protocolVersion === 5 && isAck(packet) && packet.reasonCode === undefined && packet.properties === undefined) {
    // A v5 ack with reason 0x00 and no properties goes out in the 2-byte short form (MQTT 5.0
    // §3.4.2.1). mqtt-packet writes the long form when reasonCode is absent, and common clients
    // (Paho Python 1.6) fail to parse a long-form PUBREL.
    packet = { ...packet, reasonCode: 0 };
  }
  return mqttPacket.generate(packet, { protocolVersion });
}

function isAck(p: Packet): p is Packet & { cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'; reasonCode?: number; properties?: object } {
  return p.cmd === 'puback' || p.cmd === 'pubrec' || p.cmd === 'pubrel' || p.cmd === 'pubcomp';
}

/** Size in bytes of a variable byte integer [MQTT-1.5.5]. */
export function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

// ignoreBOM: a leading U+FEFF is part of the string and MUST NOT be stripped [MQTT-1.5.4-3].
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * mqtt-packet decodes strings leniently (ill-formed bytes become U+FFFD). A UTF-8 Encoded String
 * MUST be well-formed, without surrogates [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]), and MUST NOT
 * contain U+0000 [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-2]); the receiver closes the connection
 * (v5: Malformed Packet). This replaces the parser's string reader with a strict one.
 */
function strictStrings(parser: unknown): void {
  type Internals = {
    _pos: number;
    _list: { length: number; slice(a: number, b: number): Buffer };
    packet: { length: number };
    _parseNum(): number;
    _emitError(err: Error): void;
    _parseString: () => string | null;
  };
  const p = parser as Internals;
  p._parseString = function (this: Internals): string | null {
    const length = this._parseNum();
    const end = length + this._pos;
    if (length === -1 || end > this._list.length || end > this.packet.length) return null;
    const bytes = this._list.slice(this._pos, end);
    let result: string;
    try {
      result = strictUtf8.decode(bytes);
    } catch {
      this._emitError(new Error('Malformed UTF-8 string'));
      return null;
    }
    if (result.includes('\u0000')) {
      this._emitError(new Error('UTF-8 string contains U+0000'));
      return null;
    }
    this._pos += length;
    return result;
  }.bind(p);
}
