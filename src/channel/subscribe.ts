/**
 * SUBSCRIBE / SUBACK and UNSUBSCRIBE / UNSUBACK, with subscription options, identifiers, shared
 * subscriptions and retained-message delivery after SUBACK.
 */
import type { ISubscribePacket, IUnsubscribePacket } from '../codec/codec.js';
import { RC } from '../codec/reason-codes.js';
import type { QoS, SubscriptionRecord } from '../store/types.js';
import { parseSharedFilter, validateTopicFilter } from '../topics/validate.js';
import { LIMIT_NAMES } from '../broker/limits.js';
import type { Channel } from './channel.js';

export function handleSubscribe(ch: Channel, p: ISubscribePacket): void {
  const broker = ch.broker;
  const o = broker.options;
  const session = ch.session!;
  const subId = p.properties?.subscriptionIdentifier;
  if (subId !== undefined) {
    if (!o.subscriptionIdentifiersAvailable) return ch.fail(RC.SubscriptionIdentifiersNotSupported, 'subscription identifiers not supported');
    if (subId === 0) return ch.fail(RC.ProtocolError, 'subscription identifier 0'); // (MQTT 5.0 §3.8.2.1.2: a value of 0 is a Protocol Error)
  }
  // The SUBSCRIBE payload MUST contain at least one filter [MQTT-3.8.3-3] (checked by the decoder).
  const codes: number[] = [];
  const accepted: SubscriptionRecord[] = [];
  for (const s of p.subscriptions) {
    const filter = s.topic;
    const shared = parseSharedFilter(filter);
    const inner = shared && shared !== 'invalid' ? shared.filter : filter;
    const bad = shared === 'invalid' ? 'invalid shared subscription' : validateTopicFilter(inner, { maxLength: o.maxTopicLength, maxLevels: o.maxTopicLevels });
    let code: number;
    if (bad) code = RC.TopicFilterInvalid;
    else if (ch.deps.limiter?.tooManyWildcards(inner)) {
      broker.stats.limit(LIMIT_NAMES.filterWildcards);
      code = RC.TopicFilterInvalid;
    } else if (shared && !o.sharedSubscriptionAvailable) code = RC.SharedSubscriptionsNotSupported;
    else if (shared && s.nl) {
      // No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4].
      return ch.fail(RC.ProtocolError, 'no local on a shared subscription');
    } else if (!o.wildcardSubscriptionAvailable && /[+#]/.test(inner)) code = RC.WildcardSubscriptionsNotSupported;
    else if (!broker.authorizer.authorizeSubscribe(ch.identity, filter)) code = RC.NotAuthorized;
    else if (!session.subscriptionsView.has(filter) && session.subscriptionsView.size + accepted.length >= o.maxSubscriptionsPerClient) {
      broker.stats.limit('subscriptions_per_client');
      code = RC.QuotaExceeded;
    } else {
      // Granted QoS is the lower of requested and the server's maximum [MQTT-3.2.2-9].
      const qos = Math.min(s.qos, o.maxQos) as QoS;
      code = qos;
      accepted.push({
        filter,
        qos,
        noLocal: !!s.nl,
        retainAsPublished: !!s.rap,
        retainHandling: (s.rh ?? 0) as 0 | 1 | 2,
        subscriptionId: subId,
      });
    }
    // 3.1.1 has a single failure code 0x80 [MQTT-3.9.3-2].
    codes.push(ch.isV5 || code < 0x80 ? code : 0x80);
  }
  const { existed, stored } = broker.subscribe(session, accepted);
  const send = () => {
    // SUBACK has one reason code per filter, in order [MQTT-3.8.4-6] [MQTT-3.9.3-1].
    ch.send({ cmd: 'suback', messageId: p.messageId!, granted: codes });
    // Retained messages follow SUBACK, by Retain Handling [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11];
    // never for shared subscriptions (MQTT 5.0 §4.8.2).
    accepted.forEach((sub, i) => {
      if (sub.retainHandling === 2 || (sub.retainHandling === 1 && existed[i])) return;
      if (parseSharedFilter(sub.filter)) return;
      const msgs = broker.retainedFor(sub.filter);
      if (msgs.length > 0) {
        broker.deliverRetained(session, sub, msgs).catch((err) => ch.deps.logger.warn({ err, clientId: ch.clientId }, 'retained delivery failed'));
      }
    });
  };
  stored.then(send, (err) => {
    ch.deps.logger.warn({ err, clientId: ch.clientId }, 'subscription not stored');
    ch.fail(RC.UnspecifiedError, 'subscription could not be stored');
  });
}

export function handleUnsubscribe(ch: Channel, p: IUnsubscribePacket): void {
  const session = ch.session!;
  const { existed, stored } = ch.broker.unsubscribe(session, p.unsubscriptions);
  stored.then(
    () => {
      // UNSUBACK is sent even if no filter matched [MQTT-3.10.4-5]; v5 carries a code per filter.
      if (ch.isV5) {
        ch.send({
          cmd: 'unsuback',
          messageId: p.messageId!,
          granted: existed.map((e) => (e ? RC.Success : RC.NoSubscriptionExisted)),
        } as never);
      } else {
        ch.send({ cmd: 'unsuback', messageId: p.messageId! } as never);
      }
    },
    (err) => {
      ch.deps.logger.warn({ err, clientId: ch.clientId }, 'unsubscribe not stored');
      ch.fail(RC.UnspecifiedError, 'unsubscribe could not be stored');
    },
  );
}
