/**
 * Client -> server application messages: PUBLISH validation (topic, aliases, QoS, retain),
 * Receive Maximum [MQTT-3.3.4-9], authorization, then the broker's publish pipeline; PUBACK /
 * PUBREC after the message is durable, and PUBREL -> PUBCOMP for QoS 2 (exactly once: the
 * packet id is remembered until PUBREL [MQTT-4.3.3-9]).
 */
import { keptBytes, type IPublishPacket, type IPubrelPacket, type Packet } from '../codec/codec.js';
import { RC } from '../codec/reason-codes.js';
import type { StoredMessage } from '../store/types.js';
import type { PublishOutcome } from '../broker/broker.js';
import type { PendingAck } from './channel.js';
import { validateTopicName } from '../topics/validate.js';
import { LIMIT_NAMES } from '../broker/limits.js';
import type { Channel } from './channel.js';
import { isUtf8, toBuffer } from './connect.js';

function ackPacket(ch: Channel, qos: 1 | 2, packetId: number, reasonCode: number, reasonString?: string): Packet {
  const cmd = qos === 1 ? 'puback' : 'pubrec';
  if (!ch.isV5 || (reasonCode === 0 && !reasonString)) return { cmd, messageId: packetId };
  return {
    cmd,
    messageId: packetId,
    reasonCode,
    properties: reasonString && ch.requestProblemInformation ? { reasonString } : undefined,
  };
}

/** PUBACK / PUBREC once the message is routed (and stored where it had to be). */
function acknowledge(ch: Channel, qos: 1 | 2, packetId: number, outcome: PublishOutcome, slot: PendingAck | undefined): void {
  const code = outcome.matched === 0 && ch.isV5 ? RC.NoMatchingSubscribers : RC.Success;
  if (slot) ch.completeAck(slot, ackPacket(ch, qos, packetId, code));
  else if (code === RC.Success) ch.sendSuccessAck(qos, packetId);
  else ch.sendAck(ackPacket(ch, qos, packetId, code));
  if (qos === 1) ch.inboundInFlight--;
}

export function handlePublish(ch: Channel, p: IPublishPacket): void {
  const broker = ch.broker;
  const o = broker.options;
  const session = ch.session!;
  broker.stats.publishReceived++;
  if (ch.deps.limiter && !ch.deps.limiter.admitPublish(ch)) {
    // MQTT 5 has no negative PUBACK for this (0x96 is a DISCONNECT code): disconnect.
    broker.stats.limit(LIMIT_NAMES.publishRate);
    return ch.fail(RC.MessageRateTooHigh, 'message rate too high');
  }

  // ---- topic and topic alias
  let topic = p.topic;
  const alias = p.properties?.topicAlias;
  if (alias !== undefined) {
    // An alias of 0 or above our Topic Alias Maximum is a Topic Alias Invalid error [MQTT-3.3.2-8] [MQTT-3.3.2-9].
    if (alias === 0 || alias > o.topicAliasMaximum) return ch.fail(RC.TopicAliasInvalid, `topic alias ${alias} out of range`);
    if (topic.length > 0) (ch.topicAliases ??= new Map()).set(alias, topic);
    else {
      const known = ch.topicAliases?.get(alias);
      if (known === undefined) return ch.fail(RC.ProtocolError, `topic alias ${alias} not set`);
      topic = known;
    }
  } else if (topic.length === 0) {
    return ch.fail(ch.isV5 ? RC.ProtocolError : RC.TopicNameInvalid, 'empty topic name without topic alias');
  }
  // The same string as the last valid topic (the decoder hands out the same string for the
  // same bytes, see TopicMemo) needs no second check: the limits are the broker's, fixed.
  if (topic !== ch.lastValidTopic) {
    const bad = validateTopicName(topic, { maxLength: o.maxTopicLength, maxLevels: o.maxTopicLevels });
    if (bad) {
      broker.stats.limit('topic_name');
      return ch.fail(RC.TopicNameInvalid, `topic name: ${bad}`);
    }
    ch.lastValidTopic = topic;
  }
  const qos = p.qos;
  if (qos > o.maxQos) return ch.fail(RC.QoSNotSupported, `QoS ${qos} not supported`); // [MQTT-3.2.2-11]
  if (p.retain && !o.retainAvailable) return ch.fail(RC.RetainNotSupported, 'retain not supported'); // [MQTT-3.2.2-14]
  // A client may not send a Subscription Identifier [MQTT-3.3.4-6].
  if (p.properties?.subscriptionIdentifier !== undefined) return ch.fail(RC.ProtocolError, 'subscription identifier from client');

  const packetId = p.messageId!;
  if (qos === 2 && session.incomingQos2View.has(packetId)) {
    // Re-sent PUBLISH for an id we already hold: answer PUBREC again, do not deliver again
    // [MQTT-4.3.3-10].
    ch.sendAck(ackPacket(ch, 2, packetId, 0));
    return;
  }
  if (qos > 0) {
    // Receive Maximum: more unacknowledged QoS 1/2 PUBLISH than we allowed [MQTT-3.3.4-9].
    // (A 3.1.1 client was never told a limit: it is slowed down instead, see Channel.reserveAck.)
    if (ch.isV5 && ch.inboundInFlight >= o.receiveMaximum) {
      broker.stats.limit('receive_maximum');
      return ch.fail(RC.ReceiveMaximumExceeded, 'receive maximum exceeded');
    }
    ch.inboundInFlight++;
  }

  let payload = toBuffer(p.payload);
  // A QoS 1/2 or retained payload was copied out of a large socket read by the decoder already,
  // so that a queued or retained message does not pin the read (DecoderHandlers.packet). A QoS 0
  // one is a view into the read: when QoS 0 messages are queued too, the decoder's rule here.
  if (qos === 0 && !p.retain && o.queueQos0Messages) payload = keptBytes(payload, 0, payload.length, true);
  let refusal: { code: number; why: string } | undefined;
  if (!broker.authorizer.authorizePublish(ch.identity, topic)) refusal = { code: RC.NotAuthorized, why: 'not authorized' };
  else if (p.properties?.payloadFormatIndicator && !isUtf8(payload)) {
    refusal = { code: RC.PayloadFormatInvalid, why: 'payload is not UTF-8' };
  }
  if (refusal) {
    broker.stats.drop('refused_publish');
    if (qos === 0) return;
    // v5 learns why; 3.1.1 has no negative ack, the message is acknowledged and dropped.
    ch.sendAck(ackPacket(ch, qos, packetId, ch.isV5 ? refusal.code : 0, refusal.why));
    if (qos === 1) ch.inboundInFlight--;
    else if (!ch.isV5) session.incomingQos2.add(packetId);
    else ch.inboundInFlight--;
    return;
  }

  const now = broker.now();
  const props = p.properties;
  let message: StoredMessage;
  if (props) {
    const { topicAlias: _a, messageExpiryInterval, subscriptionIdentifier: _s, ...rest } = props;
    message = {
      id: broker.nextMessageId(),
      topic,
      payload,
      qos,
      retain: p.retain,
      properties: Object.keys(rest).length ? rest : undefined,
      createdAt: now,
      expiresAt: messageExpiryInterval !== undefined ? now + messageExpiryInterval * 1000 : undefined,
    };
  } else {
    message = { id: broker.nextMessageId(), topic, payload, qos, retain: p.retain, createdAt: now };
  }

  if (qos === 0) {
    const done = broker.publishNow(message, { clientId: ch.clientId });
    if (done instanceof Promise) {
      done.catch((err) => ch.deps.logger.warn({ err, clientId: ch.clientId }, 'publish failed'));
    }
    return;
  }

  let incomingQos2;
  if (qos === 2) {
    session.incomingQos2.add(packetId);
    if (session.persistent) incomingQos2 = { clientId: session.clientId, epoch: session.epoch, packetId };
  }
  const done = broker.publishNow(message, { clientId: ch.clientId, incomingQos2 });
  if (!(done instanceof Promise)) {
    // Nothing had to be stored: acknowledge now, unless earlier acks still wait for the store.
    acknowledge(ch, qos, packetId, done, undefined);
    return;
  }
  const slot = ch.reserveAck();
  done.then(
    (outcome) => acknowledge(ch, qos, packetId, outcome, slot),
    (err) => {
      // Not durable: the publisher must not get a positive acknowledgement.
      ch.deps.logger.warn({ err, clientId: ch.clientId }, 'publish not stored');
      if (qos === 2) session.incomingQos2.delete(packetId);
      ch.completeAck(slot, undefined);
      const stale = (err as { code?: string }).code === 'SKEIN_STALE_EPOCH';
      ch.fail(stale ? RC.SessionTakenOver : RC.UnspecifiedError, stale ? 'session taken over' : 'message could not be stored');
    },
  );
}

export function handlePubrel(ch: Channel, p: IPubrelPacket): void {
  const session = ch.session!;
  const id = p.messageId!;
  if (!session.incomingQos2View.has(id)) {
    // Unknown id: the flow already completed here (PUBCOMP lost in a reconnect, or the previous
    // node of a cluster finished it before dying). A PUBREL re-sent after a reconnect is the
    // normal recovery path, so answer PUBCOMP Success as Mosquitto does; "Packet Identifier not
    // found" (0x92) makes clients such as MQTT.js report a delivered message as failed.
    ch.send({ cmd: 'pubcomp', messageId: id });
    return;
  }
  session.incomingQos2.delete(id);
  ch.inboundInFlight = Math.max(0, ch.inboundInFlight - 1);
  if (!session.persistent) {
    ch.send({ cmd: 'pubcomp', messageId: id });
    return;
  }
  // PUBCOMP only once the id is forgotten durably: otherwise a crash could make us drop a later
  // message that reuses the id as a duplicate.
  ch.broker.store.removeIncomingQos2(session.clientId, session.epoch, id).then(
    () => ch.send({ cmd: 'pubcomp', messageId: id }),
    (err) => {
      ch.deps.logger.warn({ err, clientId: ch.clientId }, 'pubrel not stored');
      ch.fail(RC.UnspecifiedError, 'store failure');
    },
  );
}
