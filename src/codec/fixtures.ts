/**
 * Annotated wire-format fixtures for the codec, in the spirit of mqtt-packet's own test.js.
 *
 * Every byte below was derived by hand from the specifications, field by field:
 *   - MQTT 3.1.1 (OASIS Standard, 29 October 2014), cited as "3.1.1 §x.y" / [MQTT-x.y.z-n]
 *   - MQTT 5.0   (OASIS Standard, 7 March 2019),    cited as "5.0 §x.y"
 *   - MQTT 3.1   (IBM/Eurotech V3.1 protocol specification), cited as "3.1 §x"
 * They are NOT produced by the encoder: the tests compare the encoder and the decoder against them.
 *
 * Conventions: `packet` is the decoded form, including the fixed-header fields (`retain`, `qos`,
 * `dup`) and the Remaining Length as `length`, which is also what `encode` is given. `s('abc')` is
 * only the UTF-8 bytes of a string: every length prefix is written out by hand next to it.
 */
import { Buffer } from 'node:buffer';
import type { Packet } from './codec.js';
import { RC } from './reason-codes.js';

export type FixtureVersion = 3 | 4 | 5;

export interface CodecFixture {
  name: string;
  /** Protocol version the bytes are in (the decoder is switched to it before feeding). */
  version: FixtureVersion;
  /** Where in the specification the layout comes from. */
  spec: string;
  /** Decoded form (also the encoder's input). */
  packet: Packet;
  /** The bytes on the wire. */
  bytes: Buffer;
  /**
   * Set when `bytes` is a valid but not the shortest/usual encoding the spec allows (e.g. an omitted
   * Property Length): then `encode(packet)` must produce these bytes instead (also derived by hand).
   */
  canonical?: Buffer;
}

export interface MalformedFixture {
  name: string;
  version: FixtureVersion;
  spec: string;
  bytes: Buffer;
  /** Reason code the Decoder's error callback must report. */
  reasonCode: number;
  /** Decoder's Maximum Packet Size for this case (default 1 MiB). */
  maxPacketSize?: number;
  /** Number of valid packets that precede the bad one in `bytes` (default 0). */
  packetsBefore?: number;
}

/** UTF-8 bytes of a string, without the two-byte length prefix (1.5.3 / 5.0 §1.5.4). */
export function s(text: string): number[] {
  return [...Buffer.from(text, 'utf8')];
}

function bytes(...parts: Array<number | number[]>): Buffer {
  return Buffer.from(parts.flat());
}

function pkt(p: Record<string, unknown>): Packet {
  return p as unknown as Packet;
}

/** Fixed-header fields mqtt-packet reports on every decoded packet. */
const H = { retain: false, qos: 0, dup: false } as const;

// -------------------------------------------------------------------------------- MQTT 3.1.1

const v311: CodecFixture[] = [
  {
    name: '3.1.1 CONNECT minimal (clean session, client id)',
    version: 4,
    spec: '3.1.1 §3.1.1 (fixed header), §3.1.2 (variable header), §3.1.3.1 (client id)',
    packet: pkt({ cmd: 'connect', ...H, length: 14, protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'c1' }),
    bytes: bytes(
      0x10, 0x0e, // type 1 CONNECT, flags 0000; Remaining Length 14
      0x00, 0x04, s('MQTT'), // Protocol Name: length 4, "MQTT" [MQTT-3.1.2-1]
      0x04, // Protocol Level 4 = 3.1.1 [MQTT-3.1.2-2]
      0x02, // Connect Flags: Clean Session (bit 1)
      0x00, 0x3c, // Keep Alive 60 s
      0x00, 0x02, s('c1'), // Client Identifier "c1"
    ),
  },
  {
    name: '3.1.1 CONNECT with will (QoS 1, retain), username, password',
    version: 4,
    spec: '3.1.1 §3.1.2.3 (connect flags), §3.1.3 (payload order: client id, will topic, will message, user name, password)',
    packet: pkt({
      cmd: 'connect', ...H, length: 31, protocolId: 'MQTT', protocolVersion: 4, clean: false, keepalive: 10, clientId: 'c1',
      will: { retain: true, qos: 1, topic: 'w/t', payload: Buffer.from('bye') },
      username: 'u', password: Buffer.from('pw'),
    }),
    bytes: bytes(
      0x10, 0x1f, // CONNECT; Remaining Length 31
      0x00, 0x04, s('MQTT'), // Protocol Name
      0x04, // Protocol Level 4
      0xec, // Flags: User Name 0x80 | Password 0x40 | Will Retain 0x20 | Will QoS 1 (0x08) | Will Flag 0x04; Clean Session 0
      0x00, 0x0a, // Keep Alive 10 s
      0x00, 0x02, s('c1'), // Client Identifier
      0x00, 0x03, s('w/t'), // Will Topic
      0x00, 0x03, s('bye'), // Will Message (binary, two-byte length)
      0x00, 0x01, s('u'), // User Name
      0x00, 0x02, s('pw'), // Password (binary)
    ),
  },
  {
    name: '3.1 CONNECT (protocol name MQIsdp, level 3)',
    version: 3,
    spec: '3.1 §3.1 (protocol name "MQIsdp", version 3)',
    packet: pkt({ cmd: 'connect', ...H, length: 16, protocolId: 'MQIsdp', protocolVersion: 3, clean: true, keepalive: 60, clientId: 'c1' }),
    bytes: bytes(
      0x10, 0x10, // CONNECT; Remaining Length 16
      0x00, 0x06, s('MQIsdp'), // Protocol Name, 6 bytes
      0x03, // Protocol Version 3
      0x02, // Clean Session
      0x00, 0x3c, // Keep Alive 60 s
      0x00, 0x02, s('c1'), // Client Identifier
    ),
  },
  {
    name: '3.1.1 CONNACK accepted',
    version: 4,
    spec: '3.1.1 §3.2 (Remaining Length 2, Connect Acknowledge Flags, Return Code)',
    packet: pkt({ cmd: 'connack', ...H, length: 2, sessionPresent: false, returnCode: 0 }),
    bytes: bytes(
      0x20, 0x02, // type 2 CONNACK; Remaining Length 2
      0x00, // Acknowledge Flags: Session Present 0
      0x00, // Return Code 0 Connection Accepted
    ),
  },
  {
    name: '3.1.1 CONNACK session present',
    version: 4,
    spec: '3.1.1 §3.2.2.2 (Session Present flag, bit 0)',
    packet: pkt({ cmd: 'connack', ...H, length: 2, sessionPresent: true, returnCode: 0 }),
    bytes: bytes(0x20, 0x02, /* SP = 1 */ 0x01, /* accepted */ 0x00),
  },
  {
    name: '3.1.1 CONNACK not authorized',
    version: 4,
    spec: '3.1.1 §3.2.2.3 Table 3.1 (return code 5)',
    packet: pkt({ cmd: 'connack', ...H, length: 2, sessionPresent: false, returnCode: 5 }),
    bytes: bytes(0x20, 0x02, 0x00, /* 5 = Connection Refused, not authorized */ 0x05),
  },
  {
    name: '3.1.1 PUBLISH QoS 0',
    version: 4,
    spec: '3.1.1 §3.3.1 (flags DUP|QoS|RETAIN), §3.3.2 (no Packet Identifier at QoS 0)',
    packet: pkt({ cmd: 'publish', ...H, length: 7, topic: 'a/b', payload: Buffer.from('hi') }),
    bytes: bytes(
      0x30, 0x07, // type 3 PUBLISH, DUP 0, QoS 0, RETAIN 0; Remaining Length 7
      0x00, 0x03, s('a/b'), // Topic Name
      s('hi'), // Payload (rest of the packet)
    ),
  },
  {
    name: '3.1.1 PUBLISH QoS 1 retained',
    version: 4,
    spec: '3.1.1 §3.3.1.2 (QoS bits 2-1), §3.3.1.3 (RETAIN bit 0), §3.3.2.2 (Packet Identifier)',
    packet: pkt({ cmd: 'publish', retain: true, qos: 1, dup: false, length: 9, topic: 'a/b', messageId: 10, payload: Buffer.from('hi') }),
    bytes: bytes(
      0x33, 0x09, // PUBLISH, QoS 1 (0x02) | RETAIN (0x01); Remaining Length 9
      0x00, 0x03, s('a/b'), // Topic Name
      0x00, 0x0a, // Packet Identifier 10
      s('hi'), // Payload
    ),
  },
  {
    name: '3.1.1 PUBLISH QoS 2 DUP, empty payload',
    version: 4,
    spec: '3.1.1 §3.3.1.1 (DUP bit 3), §3.3.3 (zero-length payload is valid)',
    packet: pkt({ cmd: 'publish', retain: false, qos: 2, dup: true, length: 7, topic: 'a/b', messageId: 0x1234, payload: Buffer.alloc(0) }),
    bytes: bytes(
      0x3c, 0x07, // PUBLISH, DUP (0x08) | QoS 2 (0x04); Remaining Length 7
      0x00, 0x03, s('a/b'), // Topic Name
      0x12, 0x34, // Packet Identifier 4660
    ),
  },
  {
    name: '3.1.1 PUBACK',
    version: 4,
    spec: '3.1.1 §3.4 (Remaining Length 2, Packet Identifier)',
    packet: pkt({ cmd: 'puback', ...H, length: 2, messageId: 10 }),
    bytes: bytes(0x40, 0x02, /* Packet Identifier */ 0x00, 0x0a),
  },
  {
    name: '3.1.1 PUBREC',
    version: 4,
    spec: '3.1.1 §3.5',
    packet: pkt({ cmd: 'pubrec', ...H, length: 2, messageId: 10 }),
    bytes: bytes(0x50, 0x02, 0x00, 0x0a),
  },
  {
    name: '3.1.1 PUBREL',
    version: 4,
    spec: '3.1.1 §3.6.1 (fixed header flags MUST be 0010 [MQTT-3.6.1-1])',
    packet: pkt({ cmd: 'pubrel', retain: false, qos: 1, dup: false, length: 2, messageId: 10 }),
    bytes: bytes(/* type 6, flags 0010 */ 0x62, 0x02, 0x00, 0x0a),
  },
  {
    name: '3.1.1 PUBCOMP',
    version: 4,
    spec: '3.1.1 §3.7',
    packet: pkt({ cmd: 'pubcomp', ...H, length: 2, messageId: 10 }),
    bytes: bytes(0x70, 0x02, 0x00, 0x0a),
  },
  {
    name: '3.1.1 SUBSCRIBE two filters',
    version: 4,
    spec: '3.1.1 §3.8.1 (flags 0010 [MQTT-3.8.1-1]), §3.8.3 (filter + Requested QoS byte)',
    packet: pkt({
      cmd: 'subscribe', retain: false, qos: 1, dup: false, length: 14, messageId: 1,
      subscriptions: [{ topic: 'a/b', qos: 1 }, { topic: 'c/#', qos: 2 }],
    }),
    bytes: bytes(
      0x82, 0x0e, // type 8 SUBSCRIBE, flags 0010; Remaining Length 14
      0x00, 0x01, // Packet Identifier 1
      0x00, 0x03, s('a/b'), 0x01, // Topic Filter "a/b", Requested QoS 1
      0x00, 0x03, s('c/#'), 0x02, // Topic Filter "c/#", Requested QoS 2
    ),
  },
  {
    name: '3.1.1 SUBACK with failure code',
    version: 4,
    spec: '3.1.1 §3.9.3 (return codes 0x00, 0x01, 0x02, 0x80)',
    packet: pkt({ cmd: 'suback', ...H, length: 5, messageId: 1, granted: [1, 2, 0x80] }),
    bytes: bytes(
      0x90, 0x05, // type 9 SUBACK; Remaining Length 5
      0x00, 0x01, // Packet Identifier 1
      0x01, 0x02, 0x80, // Success QoS 1, Success QoS 2, Failure
    ),
  },
  {
    name: '3.1.1 UNSUBSCRIBE two filters',
    version: 4,
    spec: '3.1.1 §3.10.1 (flags 0010 [MQTT-3.10.1-1]), §3.10.3',
    packet: pkt({ cmd: 'unsubscribe', retain: false, qos: 1, dup: false, length: 10, messageId: 2, unsubscriptions: ['a/b', '#'] }),
    bytes: bytes(
      0xa2, 0x0a, // type 10 UNSUBSCRIBE, flags 0010; Remaining Length 10
      0x00, 0x02, // Packet Identifier 2
      0x00, 0x03, s('a/b'), // Topic Filter
      0x00, 0x01, s('#'), // Topic Filter
    ),
  },
  {
    name: '3.1.1 UNSUBACK',
    version: 4,
    spec: '3.1.1 §3.11 (Remaining Length 2)',
    packet: pkt({ cmd: 'unsuback', ...H, length: 2, messageId: 2 }),
    bytes: bytes(0xb0, 0x02, 0x00, 0x02),
  },
  {
    name: '3.1.1 PINGREQ',
    version: 4,
    spec: '3.1.1 §3.12',
    packet: pkt({ cmd: 'pingreq', ...H, length: 0 }),
    bytes: bytes(0xc0, 0x00),
  },
  {
    name: '3.1.1 PINGRESP',
    version: 4,
    spec: '3.1.1 §3.13',
    packet: pkt({ cmd: 'pingresp', ...H, length: 0 }),
    bytes: bytes(0xd0, 0x00),
  },
  {
    name: '3.1.1 DISCONNECT',
    version: 4,
    spec: '3.1.1 §3.14',
    packet: pkt({ cmd: 'disconnect', ...H, length: 0 }),
    bytes: bytes(0xe0, 0x00),
  },
];

// -------------------------------------------------------------------------------- MQTT 5.0

const v5: CodecFixture[] = [
  {
    name: '5.0 CONNECT with properties, will properties, username, password',
    version: 5,
    spec: '5.0 §3.1.2 (variable header), §3.1.2.11 (CONNECT properties), §3.1.3.2 (will properties), §3.1.3',
    packet: pkt({
      cmd: 'connect', ...H, length: 105, protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 30,
      properties: {
        sessionExpiryInterval: 3600,
        receiveMaximum: 20,
        maximumPacketSize: 4096,
        topicAliasMaximum: 10,
        requestResponseInformation: true,
        requestProblemInformation: false,
        userProperties: { k: 'v' },
      },
      clientId: 'c1',
      will: {
        retain: false,
        qos: 2,
        properties: {
          willDelayInterval: 5,
          payloadFormatIndicator: true,
          messageExpiryInterval: 60,
          contentType: 'text/plain',
          responseTopic: 'r',
          correlationData: Buffer.from([0xbe, 0xef]),
          userProperties: { a: 'b' },
        },
        topic: 'w/t',
        payload: Buffer.from('bye'),
      },
      username: 'user',
      password: Buffer.from([1, 2, 3]),
    }),
    bytes: bytes(
      0x10, 0x69, // CONNECT; Remaining Length 105 (one-byte Variable Byte Integer, < 128)
      0x00, 0x04, s('MQTT'), // Protocol Name
      0x05, // Protocol Version 5
      0xd6, // Flags: User Name 0x80 | Password 0x40 | Will QoS 2 (0x10) | Will Flag 0x04 | Clean Start 0x02
      0x00, 0x1e, // Keep Alive 30 s
      0x1b, // Property Length 27
      0x11, 0x00, 0x00, 0x0e, 0x10, //   0x11 Session Expiry Interval (4-byte int) 3600
      0x21, 0x00, 0x14, //   0x21 Receive Maximum (2-byte int) 20
      0x27, 0x00, 0x00, 0x10, 0x00, //   0x27 Maximum Packet Size (4-byte int) 4096
      0x22, 0x00, 0x0a, //   0x22 Topic Alias Maximum 10
      0x19, 0x01, //   0x19 Request Response Information 1
      0x17, 0x00, //   0x17 Request Problem Information 0
      0x26, 0x00, 0x01, s('k'), 0x00, 0x01, s('v'), //   0x26 User Property (UTF-8 string pair) k=v
      0x00, 0x02, s('c1'), // Client Identifier
      0x29, // Will Property Length 41
      0x18, 0x00, 0x00, 0x00, 0x05, //   0x18 Will Delay Interval 5
      0x01, 0x01, //   0x01 Payload Format Indicator 1 (UTF-8)
      0x02, 0x00, 0x00, 0x00, 0x3c, //   0x02 Message Expiry Interval 60
      0x03, 0x00, 0x0a, s('text/plain'), //   0x03 Content Type
      0x08, 0x00, 0x01, s('r'), //   0x08 Response Topic
      0x09, 0x00, 0x02, 0xbe, 0xef, //   0x09 Correlation Data (binary)
      0x26, 0x00, 0x01, s('a'), 0x00, 0x01, s('b'), //   0x26 User Property a=b
      0x00, 0x03, s('w/t'), // Will Topic
      0x00, 0x03, s('bye'), // Will Payload
      0x00, 0x04, s('user'), // User Name
      0x00, 0x03, 0x01, 0x02, 0x03, // Password (binary)
    ),
  },
  {
    name: '5.0 CONNECT minimal (empty client id, no properties)',
    version: 5,
    spec: '5.0 §3.1.2.11.1 (Property Length 0), §3.1.3.1 (zero-length Client Identifier)',
    packet: pkt({ cmd: 'connect', ...H, length: 13, protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: '' }),
    bytes: bytes(
      0x10, 0x0d, // CONNECT; Remaining Length 13
      0x00, 0x04, s('MQTT'), 0x05, // Protocol Name, Version 5
      0x02, // Clean Start
      0x00, 0x00, // Keep Alive 0 (off)
      0x00, // Property Length 0
      0x00, 0x00, // Client Identifier "" (length 0)
    ),
  },
  {
    name: '5.0 CONNECT with enhanced authentication',
    version: 5,
    spec: '5.0 §3.1.2.11.9 (Authentication Method 0x15), §3.1.2.11.10 (Authentication Data 0x16)',
    packet: pkt({
      cmd: 'connect', ...H, length: 28, protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'c1',
      properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from([1, 2]) },
    }),
    bytes: bytes(
      0x10, 0x1c, // CONNECT; Remaining Length 28
      0x00, 0x04, s('MQTT'), 0x05, // Protocol Name, Version 5
      0x02, // Clean Start
      0x00, 0x3c, // Keep Alive 60
      0x0d, // Property Length 13
      0x15, 0x00, 0x05, s('SCRAM'), //   0x15 Authentication Method
      0x16, 0x00, 0x02, 0x01, 0x02, //   0x16 Authentication Data
      0x00, 0x02, s('c1'), // Client Identifier
    ),
  },
  {
    name: '5.0 CONNACK success with properties',
    version: 5,
    spec: '5.0 §3.2.2.1 (flags), §3.2.2.2 (reason code), §3.2.2.3 (CONNACK properties)',
    packet: pkt({
      cmd: 'connack', ...H, length: 38, sessionPresent: true, reasonCode: 0,
      properties: {
        sessionExpiryInterval: 120,
        receiveMaximum: 10,
        maximumQoS: 1,
        retainAvailable: true,
        maximumPacketSize: 65536,
        assignedClientIdentifier: 'abc',
        topicAliasMaximum: 5,
        wildcardSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: true,
        serverKeepAlive: 60,
      },
    }),
    bytes: bytes(
      0x20, 0x26, // CONNACK; Remaining Length 38
      0x01, // Acknowledge Flags: Session Present
      0x00, // Reason Code 0x00 Success
      0x23, // Property Length 35
      0x11, 0x00, 0x00, 0x00, 0x78, //   Session Expiry Interval 120
      0x21, 0x00, 0x0a, //   Receive Maximum 10
      0x24, 0x01, //   0x24 Maximum QoS 1
      0x25, 0x01, //   0x25 Retain Available 1
      0x27, 0x00, 0x01, 0x00, 0x00, //   Maximum Packet Size 65536
      0x12, 0x00, 0x03, s('abc'), //   0x12 Assigned Client Identifier
      0x22, 0x00, 0x05, //   Topic Alias Maximum 5
      0x28, 0x01, //   0x28 Wildcard Subscription Available 1
      0x29, 0x00, //   0x29 Subscription Identifiers Available 0
      0x2a, 0x01, //   0x2A Shared Subscription Available 1
      0x13, 0x00, 0x3c, //   0x13 Server Keep Alive 60
    ),
  },
  {
    name: '5.0 CONNACK not authorized with reason string',
    version: 5,
    spec: '5.0 §3.2.2.2 (0x87 Not authorized), §3.2.2.3.9 (Reason String 0x1F)',
    packet: pkt({ cmd: 'connack', ...H, length: 20, sessionPresent: false, reasonCode: 0x87, properties: { reasonString: 'not authorized' } }),
    bytes: bytes(
      0x20, 0x14, // CONNACK; Remaining Length 20
      0x00, // no session present
      0x87, // Reason Code Not authorized
      0x11, // Property Length 17
      0x1f, 0x00, 0x0e, s('not authorized'), //   Reason String, 14 bytes
    ),
  },
  {
    name: '5.0 PUBLISH QoS 0 without properties',
    version: 5,
    spec: '5.0 §3.3.2 (Topic Name, Property Length 0)',
    packet: pkt({ cmd: 'publish', ...H, length: 8, topic: 'a/b', payload: Buffer.from('hi') }),
    bytes: bytes(
      0x30, 0x08, // PUBLISH QoS 0; Remaining Length 8
      0x00, 0x03, s('a/b'), // Topic Name
      0x00, // Property Length 0
      s('hi'), // Payload
    ),
  },
  {
    name: '5.0 PUBLISH QoS 1 with properties, user properties and subscription identifiers',
    version: 5,
    spec: '5.0 §3.3.2.3 (PUBLISH properties; User Property may repeat §3.3.2.3.7; several Subscription Identifiers §3.3.2.3.8), §1.5.5 (Variable Byte Integer)',
    packet: pkt({
      cmd: 'publish', retain: false, qos: 1, dup: false, length: 74, topic: 'a/b', messageId: 7,
      properties: {
        payloadFormatIndicator: true,
        messageExpiryInterval: 60,
        topicAlias: 3,
        responseTopic: 'r/res',
        correlationData: Buffer.from([0xbe, 0xef]),
        userProperties: { k: ['v1', 'v2'], x: 'y' },
        subscriptionIdentifier: [1, 200],
        contentType: 'text/plain',
      },
      payload: Buffer.from('hi'),
    }),
    bytes: bytes(
      0x32, 0x4a, // PUBLISH QoS 1; Remaining Length 74
      0x00, 0x03, s('a/b'), // Topic Name
      0x00, 0x07, // Packet Identifier 7
      0x40, // Property Length 64
      0x01, 0x01, //   Payload Format Indicator 1
      0x02, 0x00, 0x00, 0x00, 0x3c, //   Message Expiry Interval 60
      0x23, 0x00, 0x03, //   0x23 Topic Alias 3
      0x08, 0x00, 0x05, s('r/res'), //   Response Topic
      0x09, 0x00, 0x02, 0xbe, 0xef, //   Correlation Data
      0x26, 0x00, 0x01, s('k'), 0x00, 0x02, s('v1'), //   User Property k=v1
      0x26, 0x00, 0x01, s('k'), 0x00, 0x02, s('v2'), //   User Property k=v2 (same name again, order kept)
      0x26, 0x00, 0x01, s('x'), 0x00, 0x01, s('y'), //   User Property x=y
      0x0b, 0x01, //   0x0B Subscription Identifier 1
      0x0b, 0xc8, 0x01, //   0x0B Subscription Identifier 200 = 0x48 + 1*128 -> 0xC8 0x01
      0x03, 0x00, 0x0a, s('text/plain'), //   Content Type
      s('hi'), // Payload
    ),
  },
  {
    name: '5.0 PUBLISH QoS 2 retained, topic alias with empty topic name',
    version: 5,
    spec: '5.0 §3.3.2.1 (zero-length Topic Name with a Topic Alias), §3.3.2.3.4',
    packet: pkt({
      cmd: 'publish', retain: true, qos: 2, dup: false, length: 9, topic: '', messageId: 8,
      properties: { topicAlias: 2 }, payload: Buffer.from('x'),
    }),
    bytes: bytes(
      0x35, 0x09, // PUBLISH QoS 2 (0x04) | RETAIN; Remaining Length 9
      0x00, 0x00, // Topic Name "" (the alias names it)
      0x00, 0x08, // Packet Identifier 8
      0x03, // Property Length 3
      0x23, 0x00, 0x02, //   Topic Alias 2
      s('x'), // Payload
    ),
  },
  {
    name: '5.0 PUBACK success, reason code and properties omitted',
    version: 5,
    spec: '5.0 §3.4.2.1 (Remaining Length 2 means Reason Code 0x00 and no properties)',
    packet: pkt({ cmd: 'puback', ...H, length: 2, messageId: 7, reasonCode: 0 }),
    bytes: bytes(0x40, 0x02, /* Packet Identifier */ 0x00, 0x07),
  },
  {
    name: '5.0 PUBACK no matching subscribers with reason string',
    version: 5,
    spec: '5.0 §3.4.2.1 (0x10 No matching subscribers), §3.4.2.2 (PUBACK properties)',
    packet: pkt({ cmd: 'puback', ...H, length: 9, messageId: 7, reasonCode: 0x10, properties: { reasonString: 'ok' } }),
    bytes: bytes(
      0x40, 0x09, // PUBACK; Remaining Length 9
      0x00, 0x07, // Packet Identifier 7
      0x10, // Reason Code No matching subscribers
      0x05, // Property Length 5
      0x1f, 0x00, 0x02, s('ok'), //   Reason String
    ),
  },
  {
    name: '5.0 PUBACK reason code without Property Length (Remaining Length 3)',
    version: 5,
    spec: '5.0 §3.4.2.2.1 (Remaining Length < 4: no Property Length, 0 is used)',
    packet: pkt({ cmd: 'puback', ...H, length: 3, messageId: 7, reasonCode: 0x10 }),
    bytes: bytes(0x40, 0x03, 0x00, 0x07, /* Reason Code */ 0x10),
    // The encoder writes the Property Length explicitly: Remaining Length 4, Property Length 0.
    canonical: bytes(0x40, 0x04, 0x00, 0x07, 0x10, /* Property Length */ 0x00),
  },
  {
    name: '5.0 PUBREC unspecified error with user property',
    version: 5,
    spec: '5.0 §3.5.2.1 (0x80 Unspecified error), §3.5.2.2',
    packet: pkt({ cmd: 'pubrec', ...H, length: 11, messageId: 7, reasonCode: 0x80, properties: { userProperties: { a: 'b' } } }),
    bytes: bytes(
      0x50, 0x0b, // PUBREC; Remaining Length 11
      0x00, 0x07, // Packet Identifier
      0x80, // Reason Code Unspecified error
      0x07, // Property Length 7
      0x26, 0x00, 0x01, s('a'), 0x00, 0x01, s('b'), //   User Property a=b
    ),
  },
  {
    name: '5.0 PUBREL success, minimal',
    version: 5,
    spec: '5.0 §3.6.2.1 (Remaining Length 2)',
    packet: pkt({ cmd: 'pubrel', retain: false, qos: 1, dup: false, length: 2, messageId: 7, reasonCode: 0 }),
    bytes: bytes(0x62, 0x02, 0x00, 0x07),
  },
  {
    name: '5.0 PUBREL packet identifier not found',
    version: 5,
    spec: '5.0 §3.6.2.1 (0x92 Packet Identifier not found), §3.6.2.2 (Property Length 0)',
    packet: pkt({ cmd: 'pubrel', retain: false, qos: 1, dup: false, length: 4, messageId: 7, reasonCode: 0x92 }),
    bytes: bytes(0x62, 0x04, 0x00, 0x07, /* Reason Code */ 0x92, /* Property Length */ 0x00),
  },
  {
    name: '5.0 PUBCOMP success, minimal',
    version: 5,
    spec: '5.0 §3.7.2.1',
    packet: pkt({ cmd: 'pubcomp', ...H, length: 2, messageId: 7, reasonCode: 0 }),
    bytes: bytes(0x70, 0x02, 0x00, 0x07),
  },
  {
    name: '5.0 PUBCOMP packet identifier not found with reason string',
    version: 5,
    spec: '5.0 §3.7.2.1, §3.7.2.2.2 (Reason String)',
    packet: pkt({ cmd: 'pubcomp', ...H, length: 11, messageId: 7, reasonCode: 0x92, properties: { reasonString: 'gone' } }),
    bytes: bytes(
      0x70, 0x0b, // PUBCOMP; Remaining Length 11
      0x00, 0x07, // Packet Identifier
      0x92, // Packet Identifier not found
      0x07, // Property Length 7
      0x1f, 0x00, 0x04, s('gone'), //   Reason String
    ),
  },
  {
    name: '5.0 SUBSCRIBE with subscription identifier and options',
    version: 5,
    spec: '5.0 §3.8.2.1 (properties: 0x0B Subscription Identifier, User Property), §3.8.3.1 (Subscription Options bits)',
    packet: pkt({
      cmd: 'subscribe', retain: false, qos: 1, dup: false, length: 31, messageId: 11,
      properties: { subscriptionIdentifier: 5, userProperties: { k: 'v' } },
      subscriptions: [
        { topic: 'a/+', qos: 1, nl: true, rap: true, rh: 2 },
        { topic: '$share/g/t', qos: 2, nl: false, rap: false, rh: 1 },
      ],
    }),
    bytes: bytes(
      0x82, 0x1f, // SUBSCRIBE, flags 0010; Remaining Length 31
      0x00, 0x0b, // Packet Identifier 11
      0x09, // Property Length 9
      0x0b, 0x05, //   Subscription Identifier 5
      0x26, 0x00, 0x01, s('k'), 0x00, 0x01, s('v'), //   User Property k=v
      0x00, 0x03, s('a/+'), // Topic Filter
      0x2d, //   Options: Retain Handling 2 (0x20) | RAP (0x08) | No Local (0x04) | QoS 1
      0x00, 0x0a, s('$share/g/t'), // Topic Filter (shared subscription)
      0x12, //   Options: Retain Handling 1 (0x10) | QoS 2
    ),
  },
  {
    name: '5.0 SUBACK with reason string and failure codes',
    version: 5,
    spec: '5.0 §3.9.2.1 (properties), §3.9.3 (reason codes 0x01, 0x80, 0xA1)',
    packet: pkt({ cmd: 'suback', ...H, length: 11, messageId: 11, properties: { reasonString: 'ok' }, granted: [1, 0x80, 0xa1] }),
    bytes: bytes(
      0x90, 0x0b, // SUBACK; Remaining Length 11
      0x00, 0x0b, // Packet Identifier 11
      0x05, // Property Length 5
      0x1f, 0x00, 0x02, s('ok'), //   Reason String
      0x01, 0x80, 0xa1, // Granted QoS 1, Unspecified error, Subscription Identifiers not supported
    ),
  },
  {
    name: '5.0 UNSUBSCRIBE with user property',
    version: 5,
    spec: '5.0 §3.10.2.1 (properties), §3.10.3',
    packet: pkt({
      cmd: 'unsubscribe', retain: false, qos: 1, dup: false, length: 27, messageId: 12,
      properties: { userProperties: { k: 'v' } }, unsubscriptions: ['a/+', '$share/g/t'],
    }),
    bytes: bytes(
      0xa2, 0x1b, // UNSUBSCRIBE, flags 0010; Remaining Length 27
      0x00, 0x0c, // Packet Identifier 12
      0x07, // Property Length 7
      0x26, 0x00, 0x01, s('k'), 0x00, 0x01, s('v'), //   User Property
      0x00, 0x03, s('a/+'), // Topic Filter
      0x00, 0x0a, s('$share/g/t'), // Topic Filter
    ),
  },
  {
    name: '5.0 UNSUBACK with reason codes',
    version: 5,
    spec: '5.0 §3.11.2 (Property Length), §3.11.3 (0x00 Success, 0x11 No subscription existed)',
    packet: pkt({ cmd: 'unsuback', ...H, length: 5, messageId: 12, granted: [0x00, 0x11] }),
    bytes: bytes(
      0xb0, 0x05, // UNSUBACK; Remaining Length 5
      0x00, 0x0c, // Packet Identifier 12
      0x00, // Property Length 0
      0x00, 0x11, // Success, No subscription existed
    ),
  },
  {
    name: '5.0 PINGREQ',
    version: 5,
    spec: '5.0 §3.12',
    packet: pkt({ cmd: 'pingreq', ...H, length: 0 }),
    bytes: bytes(0xc0, 0x00),
  },
  {
    name: '5.0 PINGRESP',
    version: 5,
    spec: '5.0 §3.13',
    packet: pkt({ cmd: 'pingresp', ...H, length: 0 }),
    bytes: bytes(0xd0, 0x00),
  },
  {
    name: '5.0 DISCONNECT normal, Remaining Length 0',
    version: 5,
    spec: '5.0 §3.14.2.1 (Reason Code and Property Length omitted: Remaining Length 0)',
    packet: pkt({ cmd: 'disconnect', ...H, length: 0, reasonCode: 0 }),
    bytes: bytes(0xe0, 0x00),
    // The encoder always writes the Reason Code and the Property Length.
    canonical: bytes(0xe0, 0x02, /* Normal disconnection */ 0x00, /* Property Length */ 0x00),
  },
  {
    name: '5.0 DISCONNECT with will message, session expiry and reason string',
    version: 5,
    spec: '5.0 §3.14.2.1 (0x04 Disconnect with Will Message), §3.14.2.2 (properties)',
    packet: pkt({
      cmd: 'disconnect', ...H, length: 13, reasonCode: 0x04,
      properties: { sessionExpiryInterval: 0, reasonString: 'bye' },
    }),
    bytes: bytes(
      0xe0, 0x0d, // DISCONNECT; Remaining Length 13
      0x04, // Reason Code Disconnect with Will Message
      0x0b, // Property Length 11
      0x11, 0x00, 0x00, 0x00, 0x00, //   Session Expiry Interval 0
      0x1f, 0x00, 0x03, s('bye'), //   Reason String
    ),
  },
  {
    name: '5.0 DISCONNECT use another server with server reference',
    version: 5,
    spec: '5.0 §3.14.2.1 (0x9C Use another server), §3.14.2.2.5 (Server Reference 0x1C)',
    packet: pkt({ cmd: 'disconnect', ...H, length: 15, reasonCode: 0x9c, properties: { serverReference: 'other:1883' } }),
    bytes: bytes(
      0xe0, 0x0f, // DISCONNECT; Remaining Length 15
      0x9c, // Use another server
      0x0d, // Property Length 13
      0x1c, 0x00, 0x0a, s('other:1883'), //   Server Reference
    ),
  },
  {
    name: '5.0 AUTH continue authentication',
    version: 5,
    spec: '5.0 §3.15.1 (flags 0000), §3.15.2.1 (0x18 Continue authentication), §3.15.2.2 (properties)',
    packet: pkt({
      cmd: 'auth', ...H, length: 16, reasonCode: 0x18,
      properties: { authenticationMethod: 'SCRAM', authenticationData: Buffer.from([1, 2, 3]) },
    }),
    bytes: bytes(
      0xf0, 0x10, // type 15 AUTH; Remaining Length 16
      0x18, // Continue authentication
      0x0e, // Property Length 14
      0x15, 0x00, 0x05, s('SCRAM'), //   Authentication Method
      0x16, 0x00, 0x03, 0x01, 0x02, 0x03, //   Authentication Data
    ),
  },
  {
    name: '5.0 AUTH re-authenticate',
    version: 5,
    spec: '5.0 §3.15.2.1 (0x19 Re-authenticate)',
    packet: pkt({ cmd: 'auth', ...H, length: 10, reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM' } }),
    bytes: bytes(
      0xf0, 0x0a, // AUTH; Remaining Length 10
      0x19, // Re-authenticate
      0x08, // Property Length 8
      0x15, 0x00, 0x05, s('SCRAM'), //   Authentication Method
    ),
  },
  {
    name: '5.0 AUTH success, Remaining Length 0',
    version: 5,
    spec: '5.0 §3.15.2.1 ("The Reason Code and Property Length can be omitted if the Reason Code is 0x00 (Success) and there are no Properties. In this case the AUTH has a Remaining Length of 0.")',
    packet: pkt({ cmd: 'auth', ...H, length: 0, reasonCode: 0 }),
    bytes: bytes(0xf0, 0x00),
    canonical: bytes(0xf0, 0x02, /* Success */ 0x00, /* Property Length */ 0x00),
  },
];

export const FIXTURES: readonly CodecFixture[] = [...v311, ...v5];

// ------------------------------------------------------------------------- malformed input

const MALFORMED_RC = RC.MalformedPacket;

export const MALFORMED: readonly MalformedFixture[] = [
  {
    name: 'reserved packet type 0',
    version: 4,
    spec: '3.1.1 §2.2.1 Table 2.1 (0 = Reserved, Forbidden)',
    bytes: bytes(0x00, 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'packet type 15 in 3.1.1',
    version: 4,
    spec: '3.1.1 §2.2.1 Table 2.1 (15 = Reserved, Forbidden)',
    bytes: bytes(0xf0, 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'PUBLISH with both QoS bits set',
    version: 4,
    spec: '3.1.1 §3.3.1.2 [MQTT-3.3.1-4]',
    bytes: bytes(0x36, 0x05, 0x00, 0x03, s('a/b')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'PUBREL with fixed header flags 0000',
    version: 4,
    spec: '3.1.1 §3.6.1 [MQTT-3.6.1-1], §2.2.2 [MQTT-2.2.2-2]',
    bytes: bytes(0x60, 0x02, 0x00, 0x01),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'SUBSCRIBE with fixed header flags 0000',
    version: 4,
    spec: '3.1.1 §3.8.1 [MQTT-3.8.1-1]',
    bytes: bytes(0x80, 0x08, 0x00, 0x01, 0x00, 0x03, s('a/b'), 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'UNSUBSCRIBE with fixed header flags 0000',
    version: 4,
    spec: '3.1.1 §3.10.1 [MQTT-3.10.1-1]',
    bytes: bytes(0xa0, 0x07, 0x00, 0x01, 0x00, 0x03, s('a/b')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'PINGREQ with a reserved flag bit set',
    version: 4,
    spec: '3.1.1 §2.2.2 Table 2.2 [MQTT-2.2.2-1]',
    bytes: bytes(0xc1, 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'Remaining Length of five bytes',
    version: 4,
    spec: '3.1.1 §2.2.3 (at most four bytes; 0xFF 0xFF 0xFF 0x7F is the maximum)',
    bytes: bytes(0x30, 0xff, 0xff, 0xff, 0xff, 0x7f),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'CONNECT with the reserved flag set',
    version: 4,
    spec: '3.1.1 §3.1.2.3 [MQTT-3.1.2-3]',
    bytes: bytes(0x10, 0x0e, 0x00, 0x04, s('MQTT'), 0x04, /* clean | reserved */ 0x03, 0x00, 0x3c, 0x00, 0x02, s('c1')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'CONNECT with protocol name MQTX',
    version: 4,
    spec: '3.1.1 §3.1.2.1 [MQTT-3.1.2-1]',
    bytes: bytes(0x10, 0x0e, 0x00, 0x04, s('MQTX'), 0x04, 0x02, 0x00, 0x3c, 0x00, 0x02, s('c1')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'CONNECT with protocol level 6',
    version: 4,
    spec: '3.1.1 §3.1.2.2 [MQTT-3.1.2-2] (the connection answers CONNACK 0x01; the codec reports it as an error)',
    bytes: bytes(0x10, 0x0e, 0x00, 0x04, s('MQTT'), 0x06, 0x02, 0x00, 0x3c, 0x00, 0x02, s('c1')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'CONNECT with Will QoS 1 but no Will Flag',
    version: 4,
    spec: '3.1.1 §3.1.2.6 [MQTT-3.1.2-13]',
    bytes: bytes(0x10, 0x0e, 0x00, 0x04, s('MQTT'), 0x04, /* clean | will QoS 1 */ 0x0a, 0x00, 0x3c, 0x00, 0x02, s('c1')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'CONNECT with Will Retain but no Will Flag',
    version: 4,
    spec: '3.1.1 §3.1.2.7 [MQTT-3.1.2-15]',
    bytes: bytes(0x10, 0x0e, 0x00, 0x04, s('MQTT'), 0x04, /* clean | will retain */ 0x22, 0x00, 0x3c, 0x00, 0x02, s('c1')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'CONNECT client id length runs past the Remaining Length',
    version: 4,
    spec: '3.1.1 §1.5.3 (length-prefixed string), §2.2.3',
    bytes: bytes(0x10, 0x0e, 0x00, 0x04, s('MQTT'), 0x04, 0x02, 0x00, 0x3c, /* says 5, has 2 */ 0x00, 0x05, s('c1')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'PUBLISH topic length runs past the Remaining Length',
    version: 4,
    spec: '3.1.1 §3.3.2.1, §1.5.3',
    bytes: bytes(0x30, 0x03, 0x00, 0x05, s('a')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'SUBSCRIBE with Requested QoS 3',
    version: 4,
    spec: '3.1.1 §3.8.3.1 [MQTT-3.8.3-4]',
    bytes: bytes(0x82, 0x08, 0x00, 0x01, 0x00, 0x03, s('a/b'), 0x03),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'SUBSCRIBE 3.1.1 with reserved option bits set',
    version: 4,
    spec: '3.1.1 §3.8.3.1 [MQTT-3.8.3-4] (upper six bits reserved, MUST be 0)',
    bytes: bytes(0x82, 0x08, 0x00, 0x01, 0x00, 0x03, s('a/b'), 0x04),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'SUBSCRIBE topic filter without its options byte',
    version: 4,
    spec: '3.1.1 §3.8.3 (each filter is followed by a Requested QoS byte)',
    bytes: bytes(0x82, 0x07, 0x00, 0x01, 0x00, 0x03, s('a/b')),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '3.1.1 SUBACK with return code 3',
    version: 4,
    spec: '3.1.1 §3.9.3 [MQTT-3.9.3-2]',
    bytes: bytes(0x90, 0x03, 0x00, 0x01, 0x03),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 SUBSCRIBE with reserved option bits 7-6 set',
    version: 5,
    spec: '5.0 §3.8.3.1 [MQTT-3.8.3-5]',
    bytes: bytes(0x82, 0x09, 0x00, 0x01, /* Property Length */ 0x00, 0x00, 0x03, s('a/b'), 0xc1),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 PUBLISH with unknown property identifier 0x7F',
    version: 5,
    spec: '5.0 §2.2.2.2 (a Control Packet containing an unknown identifier is malformed)',
    bytes: bytes(0x30, 0x08, 0x00, 0x03, s('a/b'), /* Property Length */ 0x02, 0x7f, 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 PUBLISH with property identifier 0',
    version: 5,
    spec: '5.0 §2.2.2.2',
    bytes: bytes(0x30, 0x07, 0x00, 0x03, s('a/b'), 0x01, 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 PUBLISH Property Length of five bytes',
    version: 5,
    spec: '5.0 §1.5.5 (Variable Byte Integer, at most four bytes), §2.2.2.1',
    bytes: bytes(0x30, 0x09, 0x00, 0x03, s('a/b'), 0xff, 0xff, 0xff, 0xff),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 PUBLISH string property whose length runs past the packet',
    version: 5,
    spec: '5.0 §1.5.4 (UTF-8 string = 2-byte length + data), §2.2.2.1 (Property Length bounds the properties)',
    // Content Type claims 16 bytes; the packet ends right after the length prefix.
    bytes: bytes(0x30, 0x09, 0x00, 0x03, s('a/b'), /* Property Length */ 0x03, 0x03, 0x00, 0x10),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 PUBLISH binary property whose length runs past the packet',
    version: 5,
    spec: '5.0 §1.5.6 (Binary Data = 2-byte length + data), §2.2.2.1',
    bytes: bytes(0x30, 0x09, 0x00, 0x03, s('a/b'), /* Property Length */ 0x03, /* Correlation Data */ 0x09, 0x00, 0x10),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 PUBLISH four-byte property cut short by the Property Length',
    version: 5,
    spec: '5.0 §1.5.3 (Four Byte Integer), §2.2.2.1 (Property Length), §3.3.2.3.3 (Message Expiry Interval)',
    // Property Length 1 holds only the identifier 0x02; its four value bytes are missing. The byte
    // after it (0x68) is the payload.
    bytes: bytes(0x30, 0x08, 0x00, 0x03, s('a/b'), /* Property Length */ 0x01, /* Message Expiry Interval */ 0x02, 0x68),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 PUBACK with invalid reason code 0x05',
    version: 5,
    spec: '5.0 §3.4.2.1 Table 3-4',
    bytes: bytes(0x40, 0x03, 0x00, 0x01, 0x05),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 DISCONNECT with invalid reason code 0x05',
    version: 5,
    spec: '5.0 §3.14.2.1 Table 3-10',
    bytes: bytes(0xe0, 0x02, 0x05, 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 AUTH with invalid reason code 0x01',
    version: 5,
    spec: '5.0 §3.15.2.1 Table 3-11',
    bytes: bytes(0xf0, 0x02, 0x01, 0x00),
    reasonCode: MALFORMED_RC,
  },
  {
    name: '5.0 SUBACK with invalid reason code 0x03',
    version: 5,
    spec: '5.0 §3.9.3 Table 3-8',
    bytes: bytes(0x90, 0x04, 0x00, 0x01, 0x00, 0x03),
    reasonCode: MALFORMED_RC,
  },
  {
    name: 'valid PINGREQ followed by a reserved packet type',
    version: 4,
    spec: '3.1.1 §3.12, §2.2.1',
    bytes: bytes(0xc0, 0x00, /* type 0 */ 0x00, 0x00),
    reasonCode: MALFORMED_RC,
    packetsBefore: 1,
  },
  // ----- Maximum Packet Size: refused from the fixed header, before the body arrives.
  {
    name: 'fixed header of a 268435455-byte PUBLISH (only 5 bytes fed)',
    version: 4,
    spec: '5.0 §3.1.2.11.4 / §3.2.2.3.6 (Maximum Packet Size = whole packet), 3.1.1 §2.2.3 (0xFF 0xFF 0xFF 0x7F = 268435455)',
    bytes: bytes(0x30, 0xff, 0xff, 0xff, 0x7f),
    reasonCode: RC.PacketTooLarge,
    maxPacketSize: 1024 * 1024,
  },
  {
    name: 'fixed header of a 1025-byte packet with Maximum Packet Size 1024 (3 bytes fed)',
    version: 5,
    spec: '5.0 §2.2.3: Remaining Length 1022 = 0x7E + 7*128 -> 0xFE 0x07; 1 + 2 + 1022 = 1025 > 1024',
    bytes: bytes(0x30, 0xfe, 0x07),
    reasonCode: RC.PacketTooLarge,
    maxPacketSize: 1024,
  },
  {
    name: 'oversized packet delivered whole in one chunk',
    version: 4,
    spec: '5.0 §3.1.2.11.4 ([MQTT-3.2.2-15] the limit applies to every packet, however it is segmented)',
    // 1 + 1 + 15 = 17 bytes against a limit of 16.
    bytes: bytes(0x30, 0x0f, 0x00, 0x03, s('a/b'), s('0123456789')),
    reasonCode: RC.PacketTooLarge,
    maxPacketSize: 16,
  },
];

/** Largest packet accepted with Maximum Packet Size 1024: Remaining Length 1021 = 0x7D + 7*128. */
export function packetOfExactly1024Bytes(): Buffer {
  const payload = Buffer.alloc(1021 - 5, 0x61);
  return Buffer.concat([bytes(0x30, 0xfd, 0x07, 0x00, 0x03, s('a/b')), payload]);
}
