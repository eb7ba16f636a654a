/**
 * Server -> client application messages: the in-flight window (Receive Maximum flow control
 * [MQTT-4.9.0-1]), packet identifiers, message expiry, resend on resume, and the client's
 * PUBACK / PUBREC / PUBCOMP.
 */
import { encodePublish, type IPubackPacket, type IPubcompPacket, type IPubrecPacket, type PublishProperties } from '../codec/codec.js';
import { RC } from '../codec/reason-codes.js';
import type { DeliveryEntry, QoS, StoredMessage } from '../store/types.js';
import type { Session } from '../session/session.js';
import type { Channel } from './channel.js';

/** Outcomes of `encodeDelivery` other than the bytes. */
const EXPIRED = 0;
const TOO_LARGE = 1;

/**
 * Encodes one delivery of a message straight from its fields (no packet object per subscriber;
 * the topic's UTF-8 bytes are reused across a fan-out loop, see codec.encodePublish). Returns
 * EXPIRED for a message past its expiry [MQTT-3.3.2-5], TOO_LARGE when it exceeds the client's
 * Maximum Packet Size: it is then discarded as if delivered [MQTT-3.1.2-25].
 */
function encodeDelivery(
  ch: Channel,
  message: StoredMessage,
  qos: QoS,
  retain: boolean,
  subscriptionIds: number[] | undefined,
  packetId: number | undefined,
  dup: boolean,
  now: number,
): Buffer | typeof EXPIRED | typeof TOO_LARGE {
  let props: PublishProperties | undefined;
  if (ch.isV5) {
    if (message.properties !== undefined || message.expiresAt !== undefined || subscriptionIds !== undefined) {
      props = message.properties ? { ...message.properties } : {};
      if (message.expiresAt !== undefined) {
        // Pass on the remaining lifetime, not the original interval [MQTT-3.3.2-6].
        const left = Math.ceil((message.expiresAt - now) / 1000);
        if (left <= 0) return EXPIRED;
        props.messageExpiryInterval = left;
      }
      if (subscriptionIds !== undefined && subscriptionIds.length > 0) {
        props.subscriptionIdentifier = subscriptionIds.length === 1 ? subscriptionIds[0]! : subscriptionIds;
      }
    }
  } else if (message.expiresAt !== undefined && message.expiresAt <= now) {
    return EXPIRED;
  }
  const bytes = encodePublish(message.topic, message.payload, qos, retain, dup, packetId, ch.protocolVersion, props);
  if (ch.clientMaxPacketSize > 0 && bytes.length > ch.clientMaxPacketSize) {
    ch.broker.stats.drop('too_large_for_client');
    return TOO_LARGE;
  }
  return bytes;
}

function writeEncoded(ch: Channel, bytes: Buffer): void {
  ch.transport.write(bytes);
  ch.broker.stats.publishSent++;
  ch.broker.stats.messagesSent++;
}

export function sendQos0(ch: Channel, message: StoredMessage, retain: boolean, subscriptionIds: number[] | undefined): void {
  if (ch.state !== 'connected') return;
  // QoS 0 messages are dropped, and counted, when the client does not keep up.
  if (ch.transport.bufferedBytes > ch.broker.options.maxOutputBufferBytes) {
    ch.broker.stats.drop('qos0_backpressure');
    return;
  }
  const bytes = encodeDelivery(ch, message, 0, retain, subscriptionIds, undefined, false, message.expiresAt === undefined ? 0 : Date.now());
  if (bytes === EXPIRED) ch.broker.stats.drop('expired');
  else if (bytes !== TOO_LARGE) writeEncoded(ch, bytes);
}

/** Output bytes waiting for the socket above which `pump` stops sending QoS 1/2 messages. */
const PUMP_OUTPUT_LIMIT = 256 * 1024;

/** Sends queued entries while the in-flight window has room and the output is not backed up. */
export function pump(ch: Channel): void {
  const session = ch.session;
  if (ch.state !== 'connected' || !session) return;
  const window = Math.min(ch.clientReceiveMaximum, ch.broker.options.maxInflight);
  // The `sent` records of this loop reach the store as one write (Broker.deliveryOps).
  ch.broker.beginDeliveryBatch();
  try {
    pumpLoop(ch, session, window);
  } finally {
    ch.broker.endDeliveryBatch();
  }
}

function pumpLoop(ch: Channel, session: Session, window: number): void {
  let dropped: number[] | undefined;
  // The clock is read for the first message with an expiry only: most pumps (the one after each
  // PUBACK finds the queue empty) and most messages need none, and Date.now() is a call into V8's
  // runtime (about 1% of the broker's CPU at three calls per evenly paced QoS 1 message).
  let now = 0;
  while (session.inflightCount < window) {
    if (session.queueLength === 0) break;
    if (ch.transport.bufferedBytes >= PUMP_OUTPUT_LIMIT) {
      // The client does not read as fast as we send: keep the rest queued (bounded by the queue
      // limits) instead of encoded in the output buffer; `onWritable` resumes.
      ch.waitingForOutput = true;
      break;
    }
    const e = session.shiftQueued();
    if (!e) break;
    if (e.qos === 0) {
      sendQos0(ch, e.message, e.retain, e.subscriptionIds);
      continue;
    }
    const packetId = session.allocatePacketId()!;
    if (now === 0 && e.message.expiresAt !== undefined) now = Date.now();
    const bytes = encodeDelivery(ch, e.message, e.qos, e.retain, e.subscriptionIds, packetId, false, now);
    if (typeof bytes === 'number') {
      // Expired while queued: never delivered [MQTT-3.3.2-5]; or too large for the client.
      if (bytes === EXPIRED) ch.broker.stats.drop('expired');
      (dropped ??= []).push(e.seq);
      continue;
    }
    e.packetId = packetId;
    e.phase = 'sent';
    session.inflight.set(packetId, e);
    if (e.qos === 2 && session.persistent) {
      // Exactly once across a crash: the packet id is stored before the PUBLISH leaves, so a
      // resumed session re-sends it with the same id (the receiver drops the duplicate) and
      // never as a new message under another id [MQTT-4.3.3-1] [MQTT-4.4.0-1]. Later messages
      // wait behind it so the queue order is kept on the wire.
      const slot = { ready: false, bytes: bytes as Buffer | undefined };
      (ch.publishSlots ??= []).push(slot);
      ch.broker.persistSent(session, e).then((ok) => {
        slot.ready = true;
        if (!ok || ch.session !== session || session.inflightView.get(packetId) !== e) slot.bytes = undefined;
        flushSlots(ch);
      });
      continue;
    }
    if (ch.publishSlots !== undefined && ch.publishSlots.length > 0) ch.publishSlots.push({ ready: true, bytes });
    else writeEncoded(ch, bytes);
    ch.broker.noteSent(session, e);
  }
  if (dropped) ch.broker.noteDropped(session, dropped);
}

/**
 * On a resumed session, in-flight messages are sent again first, in their original order: PUBLISH
 * with DUP set and the same packet id, or PUBREL for those already PUBRECed [MQTT-4.4.0-1].
 */
export function replay(ch: Channel): void {
  const session = ch.session!;
  const now = Date.now();
  for (const [packetId, e] of session.inflightView) {
    if (e.phase === 'released') {
      ch.send({ cmd: 'pubrel', messageId: packetId });
      continue;
    }
    // DUP is set when re-sending [MQTT-3.3.1-1]. A message in flight is sent again even if it
    // expired meanwhile (without the expiry then).
    let bytes = encodeDelivery(ch, e.message, e.qos, e.retain, e.subscriptionIds, packetId, true, now);
    if (bytes === EXPIRED) bytes = encodeDelivery(ch, { ...e.message, expiresAt: undefined }, e.qos, e.retain, e.subscriptionIds, packetId, true, now);
    if (typeof bytes !== 'number') writeEncoded(ch, bytes);
  }
  pump(ch);
}

function flushSlots(ch: Channel): void {
  const slots = ch.publishSlots;
  if (slots === undefined) return;
  while (slots.length > 0 && slots[0]!.ready) {
    const slot = slots.shift()!;
    if (slot.bytes && ch.state === 'connected') writeEncoded(ch, slot.bytes);
  }
}

function complete(ch: Channel, packetId: number): void {
  const session = ch.session!;
  session.inflight.delete(packetId);
  ch.broker.noteCompleted(session, packetId);
  pump(ch);
}

export function handlePuback(ch: Channel, p: IPubackPacket): void {
  pubackFor(ch, p.messageId!);
}

/** PUBACK for packet id `id` (also straight from the decoder, see Channel.handleAck). */
export function pubackFor(ch: Channel, id: number): void {
  const e = ch.session?.inflightView.get(id);
  // A PUBACK for an unknown id or a QoS 2 message is ignored (nothing to acknowledge).
  if (!e || e.qos !== 1) return;
  complete(ch, id);
}

export function handlePubrec(ch: Channel, p: IPubrecPacket): void {
  const session = ch.session!;
  const id = p.messageId!;
  const e: DeliveryEntry | undefined = session.inflightView.get(id);
  if (!e || e.qos !== 2) {
    // Unknown id: answer PUBREL "Packet Identifier not found" so the client can finish (MQTT 5.0 §3.6.2.1).
    ch.send(ch.isV5 ? { cmd: 'pubrel', messageId: id, reasonCode: RC.PacketIdentifierNotFound } : { cmd: 'pubrel', messageId: id });
    return;
  }
  if ((p.reasonCode ?? 0) >= 0x80) {
    // The receiver refused the message: the flow ends here (MQTT 5.0 section 4.3.3).
    complete(ch, id);
    return;
  }
  if (e.phase === 'sent') {
    e.phase = 'released';
    if (session.persistent) {
      // Once PUBREL is out the PUBLISH must never be sent again [MQTT-4.3.3-4] (3.1.1:
      // [MQTT-4.3.3-3]): store the new phase first, so a resumed session sends PUBREL.
      ch.broker.persistReleased(session, id).then((ok) => {
        if (ok && ch.session === session) ch.send({ cmd: 'pubrel', messageId: id });
      });
      return;
    }
  }
  // PUBREL after PUBREC [MQTT-4.3.3-4].
  ch.send({ cmd: 'pubrel', messageId: id });
}

export function handlePubcomp(ch: Channel, p: IPubcompPacket): void {
  pubcompFor(ch, p.messageId!);
}

/** PUBCOMP for packet id `id` (also straight from the decoder, see Channel.handleAck). */
export function pubcompFor(ch: Channel, id: number): void {
  const e = ch.session?.inflightView.get(id);
  if (!e || e.phase !== 'released') return;
  complete(ch, id);
}
