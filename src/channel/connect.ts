/**
 * CONNECT, CONNACK and the AUTH exchange. The flow reads as a list of steps:
 *   validateConnect -> authenticate -> takeOver -> openSession -> connack -> replay
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { IAuthPacket, IConnackPacket, IConnectPacket } from '../codec/codec.js';
import { RC, v3ConnackCode } from '../codec/reason-codes.js';
import type { DeliveryEntry, SessionRecord, WillRecord } from '../store/types.js';
import { validateTopicName } from '../topics/validate.js';
import type { Channel } from './channel.js';
import { replay } from './deliver.js';
import { repeatedProperty } from './validate.js';

/** `silent`: close without CONNACK (a CONNECT that does not conform [MQTT-3.1.4-1]). */
type Refusal = { reasonCode: number; reasonString: string; silent?: boolean };

/** Sends a refusing CONNACK in the client's version and closes [MQTT-3.2.2-7] (3.1.1: [MQTT-3.2.2-5]). */
export function refuseConnect(ch: Channel, version: number, reasonCode: number, reasonString: string): void {
  const packet: IConnackPacket =
    version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode, properties: ch.requestProblemInformation ? { reasonString } : undefined }
      : { cmd: 'connack', sessionPresent: false, returnCode: v3ConnackCode(reasonCode) };
  ch.deps.logger.debug({ clientId: ch.clientId, reasonCode, reasonString }, 'connect refused');
  ch.send(packet);
  void ch.close(reasonString);
}

function validateConnect(ch: Channel, p: IConnectPacket): Refusal | undefined {
  const o = ch.broker.options;
  const v5 = p.protocolVersion === 5;
  const props = p.properties ?? {};
  // The protocol name is "MQTT" for 3.1.1 and 5.0 ("MQIsdp" for 3.1); another name is not this
  // protocol: close without CONNACK [MQTT-3.1.2-1].
  if ((p.protocolId === 'MQIsdp') !== (p.protocolVersion === 3)) {
    return { reasonCode: RC.UnsupportedProtocolVersion, reasonString: `protocol name ${p.protocolId} with level ${p.protocolVersion}`, silent: true };
  }
  if (v5) {
    const repeated = repeatedProperty(props) ?? repeatedProperty(p.will?.properties);
    if (repeated) return { reasonCode: RC.ProtocolError, reasonString: `${repeated} included more than once` };
    if (props.receiveMaximum === 0) return { reasonCode: RC.ProtocolError, reasonString: 'receive maximum 0' }; // section 3.1.2.11.3
    if (props.maximumPacketSize === 0) return { reasonCode: RC.ProtocolError, reasonString: 'maximum packet size 0' };
    if (props.authenticationData && !props.authenticationMethod) {
      return { reasonCode: RC.ProtocolError, reasonString: 'authentication data without method' };
    }
  }
  // Password without user name is not allowed in 3.1.1 [MQTT-3.1.2-22]: a CONNECT that does not
  // conform is closed without CONNACK [MQTT-3.1.4-1].
  if (p.protocolVersion !== 5 && p.password !== undefined && p.username === undefined) {
    return { reasonCode: RC.MalformedPacket, reasonString: 'password without user name', silent: true };
  }
  if (p.will) {
    const bad = validateTopicName(p.will.topic, { maxLength: o.maxTopicLength, maxLevels: o.maxTopicLevels });
    if (bad) return { reasonCode: RC.TopicNameInvalid, reasonString: `will topic: ${bad}` };
    if ((p.will.qos ?? 0) > o.maxQos) return { reasonCode: RC.QoSNotSupported, reasonString: 'will QoS not supported' }; // [MQTT-3.2.2-12]
    if (p.will.retain && !o.retainAvailable) return { reasonCode: RC.RetainNotSupported, reasonString: 'retain not supported' }; // [MQTT-3.2.2-13]
    if (p.will.properties?.payloadFormatIndicator && !isUtf8(toBuffer(p.will.payload))) {
      return { reasonCode: RC.PayloadFormatInvalid, reasonString: 'will payload is not UTF-8' };
    }
  }
  if (p.clientId.length === 0) {
    // A zero-length client id needs Clean Session 1 in 3.1.1 [MQTT-3.1.3-7] [MQTT-3.1.3-8];
    // 3.1 requires 1..23 characters.
    if (p.protocolVersion === 3) return { reasonCode: RC.ClientIdentifierNotValid, reasonString: 'empty client id in MQTT 3.1' };
    if (p.protocolVersion === 4 && !p.clean) return { reasonCode: RC.ClientIdentifierNotValid, reasonString: 'empty client id needs clean session' };
    if (!o.allowZeroLengthClientId) return { reasonCode: RC.ClientIdentifierNotValid, reasonString: 'empty client id not allowed' };
  }
  return undefined;
}

/** CONNECT handler. */
export async function handleConnect(ch: Channel, p: IConnectPacket): Promise<void> {
  const broker = ch.broker;
  const o = broker.options;
  ch.state = 'connecting';
  ch.protocolVersion = (p.protocolVersion ?? 4) as 3 | 4 | 5;
  ch.transport.setProtocolVersion(ch.protocolVersion);
  const props = p.properties ?? {};
  if (ch.isV5) ch.requestProblemInformation = props.requestProblemInformation !== false;

  // Connection rate limits (src/broker/limits.ts), before any other work.
  const rateHit = ch.deps.limiter?.admitConnect(ch.transport.remoteAddress);
  if (rateHit) {
    broker.stats.limit(rateHit);
    if (ch.isV5) return refuseConnect(ch, 5, RC.ConnectionRateExceeded, 'connection rate exceeded');
    void ch.close('connection rate exceeded'); // 3.x has no code for it: close
    return;
  }

  const refusal = validateConnect(ch, p);
  if (refusal?.silent) {
    ch.deps.logger.debug({ reasonString: refusal.reasonString }, 'connect refused');
    void ch.close(refusal.reasonString);
    return;
  }
  if (refusal) return refuseConnect(ch, ch.protocolVersion, refusal.reasonCode, refusal.reasonString);
  if (!broker.acceptingConnections) {
    broker.stats.limit('not_accepting');
    return refuseConnect(ch, ch.protocolVersion, RC.ServerUnavailable, 'node is not accepting connections');
  }
  if (broker.clientCounts.connected >= o.maxConnections && !broker.targets.has(p.clientId)) {
    broker.stats.limit('max_connections');
    return refuseConnect(ch, ch.protocolVersion, RC.ServerBusy, 'too many connections');
  }

  let assignedClientId: string | undefined;
  ch.clientId = p.clientId;
  if (ch.clientId.length === 0) {
    ch.clientId = o.autoIdPrefix + randomBytes(9).toString('base64url');
    // v5 clients learn the id from CONNACK [MQTT-3.2.2-16].
    if (ch.isV5) assignedClientId = ch.clientId;
  }
  ch.username = p.username;
  // TLS listeners configured so: the certificate's CN / subject replaces the CONNECT username.
  const certUser = ch.transport.certificateUsername;
  if (certUser === null) return refuseConnect(ch, ch.protocolVersion, RC.NotAuthorized, 'no valid client certificate');
  if (certUser !== undefined) ch.username = certUser;

  // ---- authenticate
  if (ch.isV5 && props.authenticationMethod) {
    const method = ch.deps.enhancedAuth.get(props.authenticationMethod);
    if (!method) return refuseConnect(ch, 5, RC.BadAuthenticationMethod, 'unsupported authentication method');
    ch.authMethod = props.authenticationMethod;
    ch.authSession = method.start(ch.identity);
    const first = await ch.authSession.step(props.authenticationData);
    if (ch.isClosed) return;
    if (first.kind === 'failure') return refuseConnect(ch, 5, first.reasonCode, first.reasonString ?? 'authentication failed');
    if (first.kind === 'continue') {
      ch.state = 'authenticating';
      ch.pendingConnect = { packet: p, assignedClientId };
      ch.send({ cmd: 'auth', reasonCode: RC.ContinueAuthentication, properties: { authenticationMethod: ch.authMethod, authenticationData: first.data } });
      return;
    }
    if (first.username) ch.username = first.username;
    await completeConnect(ch, p, assignedClientId, first.data);
    return;
  }
  // A user name taken from a verified client certificate is authenticated by the TLS handshake
  // (Mosquitto's use_identity_as_username).
  const pending = broker.authorizer.authenticate({
    clientId: ch.clientId,
    username: ch.username,
    remoteAddress: ch.remoteAddress,
    protocolVersion: ch.protocolVersion,
    password: p.password,
    certificateUsername: typeof certUser === 'string' ? true : undefined,
  });
  // Awaited only when the authenticator is asynchronous (a password check, JWT, HTTP hook): the
  // common anonymous case goes on in the same turn.
  const auth = pending instanceof Promise ? await pending : pending;
  if (ch.isClosed) return;
  if (auth.reasonCode !== 0) return refuseConnect(ch, ch.protocolVersion, auth.reasonCode, auth.reasonString ?? 'not authorized');
  return completeConnect(ch, p, assignedClientId, undefined);
}

/** AUTH from the client: continues an exchange, or re-authenticates a connected client. */
export async function handleAuth(ch: Channel, p: IAuthPacket): Promise<void> {
  const method = p.properties?.authenticationMethod;
  // The method must stay the one of CONNECT [MQTT-4.12.0-5]; AUTH without enhanced auth is an error.
  if (!ch.authMethod || method !== ch.authMethod) {
    if (ch.state === 'authenticating') return refuseConnect(ch, 5, RC.ProtocolError, 'authentication method mismatch');
    return ch.fail(RC.ProtocolError, 'authentication method mismatch');
  }
  if (ch.state === 'connected') {
    // Re-authentication starts with AUTH 0x19 and continues with AUTH 0x18 [MQTT-4.12.1-1].
    if (p.reasonCode === RC.ReAuthenticate && !ch.reauthenticating) {
      ch.reauthenticating = true;
      ch.authSession = ch.deps.enhancedAuth.get(method)!.start(ch.identity);
    } else if (p.reasonCode !== RC.ContinueAuthentication || !ch.reauthenticating) {
      return ch.fail(RC.ProtocolError, 'AUTH reason code');
    }
  } else if (p.reasonCode !== RC.ContinueAuthentication) {
    return refuseConnect(ch, 5, RC.ProtocolError, 'AUTH reason code');
  }
  const result = await ch.authSession!.step(p.properties?.authenticationData);
  if (ch.isClosed) return;
  const connecting = ch.state === 'authenticating';
  if (result.kind !== 'continue') ch.reauthenticating = false;
  if (result.kind === 'failure') {
    if (connecting) return refuseConnect(ch, 5, result.reasonCode, result.reasonString ?? 'authentication failed');
    return ch.fail(result.reasonCode, result.reasonString ?? 're-authentication failed');
  }
  if (result.kind === 'continue') {
    ch.send({ cmd: 'auth', reasonCode: RC.ContinueAuthentication, properties: { authenticationMethod: method, authenticationData: result.data } });
    return;
  }
  if (connecting) {
    const pending = ch.pendingConnect!;
    ch.pendingConnect = undefined;
    if (result.username) ch.username = result.username;
    ch.state = 'connecting';
    await completeConnect(ch, pending.packet, pending.assignedClientId, result.data);
    return;
  }
  ch.send({ cmd: 'auth', reasonCode: RC.Success, properties: { authenticationMethod: method, authenticationData: result.data } });
}

async function completeConnect(ch: Channel, p: IConnectPacket, assignedClientId: string | undefined, authData: Buffer | undefined): Promise<void> {
  const broker = ch.broker;
  const o = broker.options;
  const props = p.properties ?? {};

  // ---- keep alive
  let serverKeepAlive: number | undefined;
  ch.keepAlive = p.keepalive ?? 0;
  if (ch.keepAlive > o.maxKeepAlive || (ch.keepAlive === 0 && o.maxKeepAlive < 65535 && ch.isV5)) {
    if (ch.isV5) {
      serverKeepAlive = o.maxKeepAlive; // Server Keep Alive overrides the client's [MQTT-3.2.2-21]
      ch.keepAlive = o.maxKeepAlive;
    }
  }

  // ---- session expiry
  let expiry: number;
  if (ch.isV5) expiry = Math.min(props.sessionExpiryInterval ?? 0, o.maxSessionExpiry);
  else expiry = p.clean ? 0 : 0xffffffff; // 3.1.1: clean session 0 keeps the session
  ch.connectExpiryZero = expiry === 0;
  const cleanStart = p.clean !== false;

  if (ch.isV5) {
    ch.clientReceiveMaximum = props.receiveMaximum ?? 65535;
    ch.clientMaxPacketSize = props.maximumPacketSize ?? 0;
  }

  // ---- will
  let will: WillRecord | undefined;
  if (p.will) {
    const wp = p.will.properties ?? {};
    const { willDelayInterval, ...msgProps } = wp;
    will = {
      topic: p.will.topic,
      payload: toBuffer(p.will.payload),
      qos: (p.will.qos ?? 0) as 0 | 1 | 2,
      retain: p.will.retain ?? false,
      properties: Object.keys(msgProps).length ? (msgProps as WillRecord['properties']) : undefined,
      delayInterval: willDelayInterval ?? 0,
    };
    // A will goes out with its client's rights: one the ACLs refuse is dropped (Mosquitto checks
    // the will topic for write access and silently skips a refused will; the client connects).
    if (!broker.authorizer.authorizePublish(ch.identity, will.topic)) {
      ch.deps.logger.debug({ clientId: ch.clientId, topic: will.topic }, 'will dropped: not authorized');
      will = undefined;
    }
  }

  // ---- take over an existing connection with this client id [MQTT-3.1.4-3]
  const previous = broker.targets.get(ch.clientId);
  if (previous && previous !== ch) {
    // The old connection's will is sent unless the new one resumes the session and its will has a
    // delay (MQTT 5.0 section 3.1.2.5).
    const old = previous as Channel;
    const oldWillDelay = old.session?.record.will?.delayInterval ?? 0;
    old.setWillOnClose(cleanStart || oldWillDelay === 0);
    await previous.kick(RC.SessionTakenOver, 'session taken over');
    if (ch.isClosed) return;
  }

  const record: SessionRecord = {
    clientId: ch.clientId,
    protocolVersion: ch.protocolVersion,
    expiryInterval: expiry,
    nodeId: o.nodeId,
    will,
    username: ch.username,
  };
  let opened;
  try {
    const o = broker.openSession(record, cleanStart);
    opened = o instanceof Promise ? await o : o;
  } catch (err) {
    ch.deps.logger.warn({ err, clientId: ch.clientId }, 'session open failed');
    return refuseConnect(ch, ch.protocolVersion, RC.ServerUnavailable, 'session store unavailable');
  }
  if (ch.isClosed) {
    // The client went away while the session was opening: record the disconnect.
    await broker.detach(ch, opened.session, true);
    return;
  }
  ch.session = opened.session;
  broker.attach(ch.clientId, ch, cleanStart);

  // ---- CONNACK
  // Session Present is 0 on a clean start [MQTT-3.2.2-2], otherwise whether a session existed
  // [MQTT-3.2.2-3].
  const sessionPresent = !cleanStart && opened.present;
  if (ch.isV5) {
    const cp: NonNullable<IConnackPacket['properties']> = {};
    if (o.receiveMaximum < 65535) cp.receiveMaximum = o.receiveMaximum;
    if (o.maxQos < 2) cp.maximumQoS = o.maxQos;
    if (!o.retainAvailable) cp.retainAvailable = false;
    cp.maximumPacketSize = o.maxPacketSize;
    if (assignedClientId) cp.assignedClientIdentifier = assignedClientId;
    cp.topicAliasMaximum = o.topicAliasMaximum;
    if (!o.wildcardSubscriptionAvailable) cp.wildcardSubscriptionAvailable = false;
    if (!o.subscriptionIdentifiersAvailable) cp.subscriptionIdentifiersAvailable = false;
    if (!o.sharedSubscriptionAvailable) cp.sharedSubscriptionAvailable = false;
    if (serverKeepAlive !== undefined) cp.serverKeepAlive = serverKeepAlive;
    if ((props.sessionExpiryInterval ?? 0) !== expiry) cp.sessionExpiryInterval = expiry;
    if (props.requestResponseInformation) cp.responseInformation = `response/${ch.clientId}`;
    if (ch.authMethod) {
      cp.authenticationMethod = ch.authMethod;
      if (authData) cp.authenticationData = authData;
    }
    ch.send({ cmd: 'connack', sessionPresent, reasonCode: RC.Success, properties: cp });
  } else {
    ch.send({ cmd: 'connack', sessionPresent, returnCode: 0 });
  }
  ch.state = 'connected';
  ch.startKeepAlive();
  ch.deps.logger.debug({ clientId: ch.clientId, remote: ch.transport.remoteAddress, version: ch.protocolVersion, sessionPresent }, 'client connected');

  // ---- resend in-flight messages, then queued ones [MQTT-4.4.0-1]
  if (opened.present) dropUnreadable(ch);
  replay(ch);
  ch.drainBacklog();
}

/**
 * A resumed session may hold messages queued for an earlier connection of the client id under
 * another identity (user name): those this connection may not read are dropped before replay,
 * as Mosquitto re-checks the queued and in-flight messages of a session at CONNECT.
 * Entries in PUBREL (`released`) carry no message to the client and stay.
 */
function dropUnreadable(ch: Channel): void {
  const session = ch.session!;
  const broker = ch.broker;
  const may = (e: DeliveryEntry) => broker.authorizer.authorizeDelivery(ch.identity, e.message.topic);
  const mayNot = (e: DeliveryEntry) => !may(e);
  const dropped: number[] = [];
  for (const [packetId, e] of session.inflightView) {
    if (e.phase === 'sent' && !may(e)) {
      session.inflight.delete(packetId);
      dropped.push(e.seq);
    }
  }
  // The queue is rebuilt only when something in it has to go (a backlog is usually all readable).
  if (session.queueLength > 0 && session.someQueued(mayNot)) {
    for (const e of session.clearQueue()) {
      if (may(e)) session.pushQueued(e);
      else dropped.push(e.seq);
    }
  }
  if (dropped.length === 0) return;
  broker.stats.drop('not_authorized', dropped.length);
  broker.noteDropped(session, dropped);
  ch.deps.logger.debug({ clientId: ch.clientId, dropped: dropped.length }, 'queued messages dropped: not authorized for this connection');
}

export function toBuffer(payload: Buffer | string): Buffer {
  return typeof payload === 'string' ? Buffer.from(payload) : payload;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
export function isUtf8(buf: Buffer): boolean {
  try {
    utf8.decode(buf);
    return true;
  } catch {
    return false;
  }
}
