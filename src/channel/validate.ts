/**
 * Packet-level checks the decoder (mqtt-packet) does not make: non-zero packet identifiers,
 * non-empty SUBSCRIBE / UNSUBSCRIBE payloads and properties included more than once. Each returns
 * the reason code and a short reason, or undefined when the packet is acceptable.
 */
import type { Packet } from '../codec/codec.js';
import { RC } from '../codec/reason-codes.js';

export interface Violation {
  reasonCode: number;
  reason: string;
}

/** Properties that may appear more than once in a packet (MQTT 5.0 section 2.2.2.2). */
const REPEATABLE = new Set(['userProperties', 'subscriptionIdentifier']);

/** "It is a Protocol Error to include the <property> more than once" (MQTT 5.0 section 3). */
export function repeatedProperty(props: object | undefined): string | undefined {
  if (!props) return undefined;
  for (const [name, value] of Object.entries(props)) {
    if (Array.isArray(value) && !REPEATABLE.has(name)) return name;
  }
  return undefined;
}

/** `checkPacket` for a PUBLISH (its own function: see Channel.handlePublishPacket). */
export function checkPublish(packet: Packet & { cmd: 'publish' }): Violation | undefined {
  const repeated = repeatedProperty(packet.properties);
  if (repeated) return { reasonCode: RC.ProtocolError, reason: `${repeated} included more than once` };
  // PUBLISH QoS > 0, SUBSCRIBE, UNSUBSCRIBE carry a non-zero Packet Identifier [MQTT-2.2.1-3]
  // (3.1.1: [MQTT-2.3.1-1]).
  if (packet.qos > 0 && !packet.messageId) return { reasonCode: RC.ProtocolError, reason: 'packet identifier 0' };
  return undefined;
}

export function checkPacket(packet: Packet): Violation | undefined {
  if (packet.cmd === 'publish') return checkPublish(packet);
  const p = packet as Packet & { messageId?: number; qos?: number; properties?: object };
  const repeated = repeatedProperty(p.properties);
  if (repeated) return { reasonCode: RC.ProtocolError, reason: `${repeated} included more than once` };
  switch (packet.cmd) {
    case 'subscribe':
      if (!packet.messageId) return { reasonCode: RC.ProtocolError, reason: 'packet identifier 0' };
      // At least one Topic Filter [MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3]).
      if (packet.subscriptions.length === 0) return { reasonCode: RC.ProtocolError, reason: 'SUBSCRIBE without topic filter' };
      return undefined;
    case 'unsubscribe':
      if (!packet.messageId) return { reasonCode: RC.ProtocolError, reason: 'packet identifier 0' };
      // At least one Topic Filter [MQTT-3.10.3-2].
      if (packet.unsubscriptions.length === 0) return { reasonCode: RC.ProtocolError, reason: 'UNSUBSCRIBE without topic filter' };
      return undefined;
    default:
      return undefined;
  }
}
