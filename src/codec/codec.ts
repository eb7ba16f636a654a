/**
 * Pure MQTT 3.1 / 3.1.1 / 5.0 codec. Wraps `mqtt-packet` (the Node ecosystem's wire-format
 * library) and adds what a broker needs around it: an inbound size limit checked as soon as the
 * fixed header is read (before the body is buffered), the switch to the connection's protocol
 * version once CONNECT is decoded, and errors turned into reason codes.
 */
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
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
 */
export class Decoder {
  private readonly parser: ReturnType<typeof mqttPacket.parser>;
  private failed = false;

  constructor(
    private readonly handlers: DecoderHandlers,
    /** Maximum Packet Size the broker accepts, in bytes (whole packet) [MQTT-3.2.2-15]. */
    private maxPacketSize: number,
  ) {
    // Until CONNECT is decoded we do not know the version; mqtt-packet reads CONNECT in any
    // version because the version is inside the packet.
    this.parser = mqttPacket.parser({ protocolVersion: 4 });
    this.parser.on('packet', (packet: Packet) => {
      if (this.failed) return;
      // A packet that arrived whole in one chunk is checked here (partial ones in `push`).
      const length = (packet as { length?: number }).length ?? 0;
      if (length + 1 + varIntSize(length) > this.maxPacketSize) {
        this.fail(RC.PacketTooLarge, `packet of ${length} bytes exceeds the maximum packet size ${this.maxPacketSize}`);
        return;
      }
      if (packet.cmd === 'connect' && packet.protocolVersion) {
        // Later packets of this connection are decoded in the version CONNECT named.
        (this.parser as unknown as { settings: { protocolVersion: number } }).settings.protocolVersion =
          packet.protocolVersion;
      }
      this.handlers.packet(packet);
    });
    this.parser.on('error', (err: Error) => this.fail(RC.MalformedPacket, err.message));
    strictStrings(this.parser);
  }

  set protocolVersion(v: ProtocolVersionNumber) {
    (this.parser as unknown as { settings: { protocolVersion: number } }).settings.protocolVersion = v;
  }

  setMaxPacketSize(n: number): void {
    this.maxPacketSize = n;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    try {
      this.parser.parse(chunk);
    } catch (err) {
      // mqtt-packet throws on a few inputs instead of emitting (e.g. invalid property types).
      this.fail(RC.MalformedPacket, (err as Error).message);
      return;
    }
    // The parser has read the fixed header of the packet it waits on: refuse it before buffering
    // a body larger than allowed. Remaining length + fixed header (at most 5 bytes) [MQTT-3.2.2-15].
    const pending = (this.parser as unknown as { packet: { length: number } }).packet.length;
    if (!this.failed && pending > 0 && pending + 1 + varIntSize(pending) > this.maxPacketSize) {
      this.fail(RC.PacketTooLarge, `packet of ${pending} bytes exceeds the maximum packet size ${this.maxPacketSize}`);
    }
  }

  private fail(reasonCode: number, message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.handlers.error({ reasonCode, message });
  }
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
