/**
 * The protocol state machine of one client connection, socket-free: packets come in through
 * `handle`, packets go out through the `Transport` it is given. It is the single place where
 * protocol errors become reason codes (`fail`). Handlers for each packet type live beside it:
 * connect.ts, publish.ts (inbound PUBLISH and its acks), deliver.ts (outbound PUBLISH and the
 * client's acks), subscribe.ts, and this file keeps the lifecycle: keepalive, DISCONNECT, close.
 */
import type { Logger } from 'pino';
import type { ClientIdentity, EnhancedAuthMethod, EnhancedAuthSession } from '../auth/types.js';
import type { Broker, DeliveryTarget } from '../broker/broker.js';
import type { AbuseLimiter } from '../broker/limits.js';
import { fourByteAckHeader, type IConnectPacket, type Packet } from '../codec/codec.js';
import { RC } from '../codec/reason-codes.js';
import type { Session } from '../session/session.js';
import type { StoredMessage } from '../store/types.js';
import { handleAuth, handleConnect } from './connect.js';
import { handlePuback, handlePubcomp, handlePubrec, pubackFor, pubcompFor, pump, sendQos0 } from './deliver.js';
import { handlePublish, handlePubrel } from './publish.js';
import { handleSubscribe, handleUnsubscribe } from './subscribe.js';
import { checkPacket, checkPublish } from './validate.js';

/** What a channel needs from its connection. */
export interface Transport {
  readonly remoteAddress: string;
  /** Encodes a packet in the connection's protocol version. */
  encode(packet: Packet): Buffer;
  /** Writes encoded bytes (batched per event-loop turn). */
  write(bytes: Buffer): void;
  /** Writes a four-byte packet (`b0`, Remaining Length 2, Packet Identifier `id`): the common
   *  PUBACK / PUBREC / PUBREL / PUBCOMP, in order with `write`, without a Buffer of its own. */
  writeAck(b0: number, id: number): void;
  /** Bytes written but not yet flushed to the socket. */
  readonly bufferedBytes: number;
  /** Ends the connection after flushing what was written. */
  close(): void;
  /** Stops reading from the client (flow control of MQTT 3.1.1 publishers), and starts again. */
  pauseInput(): void;
  resumeInput(): void;
  /** Switches encoder and decoder to the version CONNECT named. */
  setProtocolVersion(v: 3 | 4 | 5): void;
  /** Set only on TLS listeners with `useIdentityAsUsername` / `useSubjectAsUsername`: the username
   *  the client's valid certificate gives, or null when it has none (the client is refused). */
  readonly certificateUsername?: string | null;
}

export interface ChannelDeps {
  broker: Broker;
  logger: Logger;
  enhancedAuth: Map<string, EnhancedAuthMethod>;
  /** Rate and wildcard limits (src/broker/limits.ts); none = no such limits. */
  limiter?: AbuseLimiter;
}

export type ChannelState = 'awaiting-connect' | 'connecting' | 'authenticating' | 'connected' | 'closed';

/** One pending acknowledgement to the publisher, sent in the order PUBLISH packets arrived. */
export interface PendingAck {
  done: boolean;
  packet: Packet | undefined;
}

/**
 * Connect timeouts and keep-alive limits of every open channel are checked by one sweep every
 * SWEEP_MS instead of a timer per connection (a Timeout and its closure cost more memory than the
 * rest of an idle connection's channel, and re-arming them costs time on every packet). A limit
 * is therefore enforced up to SWEEP_MS late, never early.
 */
const SWEEP_MS = 250;
const watched = new Set<Channel>();
/**
 * Sweeps since the process started: channels record activity in this unit (a small integer is
 * stored in the object itself; a millisecond timestamp would be a boxed number per channel, and
 * a Date.now() call per packet). Advanced by the sweeper; 2^30 sweeps are 8.5 years.
 */
let tick = 0;
let sweeper: NodeJS.Timeout | undefined;

function watch(ch: Channel): void {
  watched.add(ch);
  sweeper ??= setInterval(sweep, SWEEP_MS).unref();
}

function unwatch(ch: Channel): void {
  watched.delete(ch);
  if (watched.size === 0 && sweeper !== undefined) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

function sweep(): void {
  tick++;
  for (const ch of watched) ch.checkTimeouts(tick);
}

export class Channel implements DeliveryTarget, ClientIdentity {
  state: ChannelState = 'awaiting-connect';
  protocolVersion: 3 | 4 | 5 = 4;
  clientId = '';
  username: string | undefined;
  session: Session | undefined;
  /** Keep Alive in seconds as in force (client's, or Server Keep Alive) [MQTT-3.1.2-22]. */
  keepAlive = 0;
  /** Client's Receive Maximum: our outbound in-flight window is the smaller of it and ours. */
  clientReceiveMaximum = 65535;
  /** Client's Maximum Packet Size; 0 = no limit [MQTT-3.1.2-24]. */
  clientMaxPacketSize = 0;
  /** Inbound topic aliases (MQTT 5.0 §3.3.2.3.4): alias -> topic name; created on first use
   *  (idle connections are kept small: every field here costs memory per connection). */
  topicAliases: Map<number, string> | undefined;
  /** The last topic name of this client's PUBLISH that passed validateTopicName (publish.ts). */
  lastValidTopic: string | undefined = undefined;
  /** Inbound QoS 1/2 PUBLISH not yet fully acknowledged (for Receive Maximum [MQTT-3.3.4-9]). */
  inboundInFlight = 0;
  requestProblemInformation = true;
  /** Whether the session had Session Expiry 0 at CONNECT (DISCONNECT may not raise it, section 3.14.2.2.2). */
  connectExpiryZero = false;
  authMethod: string | undefined;
  authSession: EnhancedAuthSession | undefined;
  /** A re-authentication (AUTH 0x19) is in progress. */
  reauthenticating = false;
  /** CONNECT waiting for an AUTH exchange to finish. */
  pendingConnect: { packet: IConnectPacket; assignedClientId: string | undefined } | undefined;
  /** Set when the client sent DISCONNECT; the will is then dropped unless reason 0x04. */
  private gracefulDisconnect = false;
  private publishWillOnClose = true;
  /** Acknowledgements waiting for earlier ones (created when a store write is pending). */
  private ackQueue: PendingAck[] | undefined;
  /** Outbound PUBLISH bytes waiting, in queue order, for earlier ones whose packet id is still
   *  being stored (QoS 2 to persistent sessions). */
  publishSlots: Array<{ ready: boolean; bytes: Buffer | undefined }> | undefined;
  private backlog: Packet[] | undefined;
  /** Sweep tick of the last packet from the client. */
  private lastActivity = tick;
  /** Sweep tick at which a client that has not finished CONNECT is closed. */
  private readonly connectDeadline: number;
  /** Sweeps that must pass without a packet before the keep-alive closes the connection
   *  (1.5x Keep Alive, rounded up, plus one for the partial sweep of the last packet);
   *  0 = no keep-alive check. */
  private keepAliveLimitTicks = 0;
  private closing: Promise<void> | undefined;
  private inputPaused = false;

  constructor(
    readonly transport: Transport,
    readonly deps: ChannelDeps,
  ) {
    // A client that never sends CONNECT is closed after the connect timeout (see `sweep`).
    this.connectDeadline = tick + Math.ceil(deps.broker.options.connectTimeoutMs / SWEEP_MS) + 1;
    watch(this);
  }

  get broker(): Broker {
    return this.deps.broker;
  }

  /** The client's address (a ClientIdentity field; computed when asked, not kept per channel). */
  get remoteAddress(): string {
    return this.transport.remoteAddress;
  }

  /** Who the client is, for authorization: the channel itself (its clientId, username,
   *  protocolVersion and remoteAddress are the live ClientIdentity fields, so no copy per
   *  connection is kept or rebuilt when they change). */
  get identity(): ClientIdentity {
    return this;
  }

  /** A getter, so that checks after an `await` are not narrowed away by the compiler. */
  get isClosed(): boolean {
    return this.state === 'closed';
  }

  get isV5(): boolean {
    return this.protocolVersion === 5;
  }

  // ---------------------------------------------------------------- inbound

  /** Handles one decoded packet from the client. Never throws. */
  handle(packet: Packet): void {
    if (this.state === 'closed') return;
    this.lastActivity = tick;
    // While CONNECT (or an AUTH exchange) is in progress, later packets wait their turn.
    if (this.state === 'connecting' || (this.state === 'authenticating' && packet.cmd !== 'auth')) {
      const backlog = (this.backlog ??= []);
      if (backlog.length >= 1000) {
        this.fail(RC.ReceiveMaximumExceeded, 'too many packets before CONNACK');
        return;
      }
      backlog.push(packet);
      return;
    }
    try {
      this.dispatch(packet);
    } catch (err) {
      this.handlerFailed(err);
    }
  }

  /**
   * A PUBLISH, as `handle` would take it, on a path of its own while connected: `dispatch` sees
   * every kind of packet, and with them in its type feedback V8 inlined less of the publish path
   * (fan-in QoS 0 was 10% slower after traffic of all kinds than after QoS 0 alone; BENCHMARKS.md).
   */
  handlePublishPacket(packet: Packet & { cmd: 'publish' }): void {
    if (this.state !== 'connected') return this.handle(packet);
    this.lastActivity = tick;
    try {
      const violation = checkPublish(packet);
      if (violation) return this.fail(violation.reasonCode, violation.reason);
      handlePublish(this, packet);
    } catch (err) {
      this.handlerFailed(err);
    }
  }

  /**
   * A PUBACK (`b0` 0x40) or PUBCOMP (0x70) with reason Success, as `handle` would take it, without
   * a packet object: only when connected (before that, packets wait in order as objects). False:
   * not handled, decode it as a packet.
   */
  handleAck(b0: number, packetId: number): boolean {
    if (this.state !== 'connected') return false;
    this.lastActivity = tick;
    try {
      if (b0 === 0x40) pubackFor(this, packetId);
      else pubcompFor(this, packetId);
    } catch (err) {
      this.handlerFailed(err);
    }
    return true;
  }

  private handlerFailed(err: unknown): void {
    this.deps.logger.error({ err, clientId: this.clientId }, 'packet handler failed');
    this.fail(RC.ImplementationSpecificError, 'internal error');
  }

  private dispatch(packet: Packet): void {
    if (this.state === 'awaiting-connect') {
      // The first packet from the client MUST be CONNECT [MQTT-3.1.0-1].
      if (packet.cmd !== 'connect') {
        this.close('first packet was not CONNECT');
        return;
      }
      void handleConnect(this, packet);
      return;
    }
    const violation = checkPacket(packet);
    if (violation) return this.fail(violation.reasonCode, violation.reason);
    switch (packet.cmd) {
      case 'publish':
        handlePublish(this, packet);
        return;
      case 'puback':
        handlePuback(this, packet);
        return;
      case 'pubrec':
        handlePubrec(this, packet);
        return;
      case 'pubrel':
        handlePubrel(this, packet);
        return;
      case 'pubcomp':
        handlePubcomp(this, packet);
        return;
      case 'subscribe':
        handleSubscribe(this, packet);
        return;
      case 'unsubscribe':
        handleUnsubscribe(this, packet);
        return;
      case 'pingreq':
        this.send({ cmd: 'pingresp' });
        return;
      case 'disconnect':
        this.handleDisconnect(packet);
        return;
      case 'auth':
        if (!this.isV5) return this.fail(RC.ProtocolError, 'AUTH is not part of MQTT 3.1.1');
        void handleAuth(this, packet);
        return;
      case 'connect':
        // A second CONNECT is a Protocol Error [MQTT-3.1.0-2].
        this.fail(RC.ProtocolError, 'second CONNECT');
        return;
      default:
        // CONNACK, SUBACK, UNSUBACK, PINGRESP are never sent by a client.
        this.fail(RC.ProtocolError, `unexpected ${packet.cmd} from client`);
    }
  }

  /** Runs the packets that arrived while CONNECT or AUTH was in progress. */
  drainBacklog(): void {
    const backlog = this.backlog;
    if (backlog === undefined) return;
    while (backlog.length > 0 && this.state === 'connected') this.handle(backlog.shift()!);
    this.backlog = undefined;
  }

  private handleDisconnect(packet: Packet & { cmd: 'disconnect' }): void {
    const session = this.session;
    const reason = packet.reasonCode ?? 0;
    const expiry = packet.properties?.sessionExpiryInterval;
    if (this.isV5 && expiry !== undefined && session) {
      // A non-zero Session Expiry on DISCONNECT after 0 at CONNECT is a Protocol Error (MQTT 5.0
      // section 3.14.2.2.2); the server's DISCONNECT never carries Session Expiry [MQTT-3.14.2-2].
      if (this.connectExpiryZero && expiry !== 0) {
        this.fail(RC.ProtocolError, 'session expiry interval set on DISCONNECT after CONNECT had 0');
        return;
      }
      session.record = { ...session.record, expiryInterval: Math.min(expiry, this.broker.options.maxSessionExpiry) };
      session.persistent = this.broker.isPersistent(session.record);
    }
    this.gracefulDisconnect = true;
    // DISCONNECT 0x04 asks for the will; any other graceful DISCONNECT deletes it [MQTT-3.14.4-3].
    this.publishWillOnClose = this.isV5 && reason === RC.DisconnectWithWillMessage;
    this.close('client disconnected');
  }

  // ---------------------------------------------------------------- acks in order

  /**
   * Reserves the next acknowledgement slot. PUBACKs (and PUBRECs) go out in the order the
   * PUBLISH packets arrived [MQTT-4.6.0-2] [MQTT-4.6.0-3], even when their store writes finish
   * out of order.
   */
  reserveAck(): PendingAck {
    const slot: PendingAck = { done: false, packet: undefined };
    const q = (this.ackQueue ??= []);
    q.push(slot);
    if (q.length >= this.broker.options.receiveMaximum && !this.isV5 && !this.inputPaused) {
      // MQTT 3.1.1 has no Receive Maximum to announce: a client with this many PUBLISH packets
      // waiting for the store is not read until their acknowledgements go out (TCP pushes back),
      // rather than disconnected for a limit it cannot know. (MQTT 5 clients are held to the
      // Receive Maximum of CONNACK [MQTT-3.3.4-9].)
      this.inputPaused = true;
      this.transport.pauseInput();
    }
    return slot;
  }

  /** Sends an acknowledgement that needed no store write: at once, or behind earlier ones that
   *  still wait for theirs, keeping the order of arrival [MQTT-4.6.0-2]. */
  sendAck(packet: Packet): void {
    const q = this.ackQueue;
    if (q === undefined || q.length === 0) this.send(packet);
    else q.push({ done: true, packet });
  }

  completeAck(slot: PendingAck, packet: Packet | undefined): void {
    slot.done = true;
    slot.packet = packet;
    const q = this.ackQueue!;
    while (q.length > 0 && q[0]!.done) {
      const head = q.shift()!;
      if (head.packet) this.send(head.packet);
    }
    if (this.inputPaused && q.length < this.broker.options.receiveMaximum) {
      this.inputPaused = false;
      if (this.state !== 'closed') this.transport.resumeInput();
    }
  }

  // ---------------------------------------------------------------- outbound

  /** PUBACK (qos 1) / PUBREC (qos 2) with reason Success for `id`, in order behind any pending
   *  acknowledgements: as `sendAck`, without a packet object. */
  sendSuccessAck(qos: 1 | 2, id: number): void {
    const q = this.ackQueue;
    if (q !== undefined && q.length > 0) q.push({ done: true, packet: { cmd: qos === 1 ? 'puback' : 'pubrec', messageId: id } });
    else if (this.state !== 'closed') this.transport.writeAck(qos === 1 ? 0x40 : 0x50, id);
  }

  send(packet: Packet): void {
    if (this.state === 'closed') return;
    // The common acks are four bytes in every version (3.1.1 §3.4-3.7; 5.0 short form for
    // reason 0x00 without properties, §3.4.2.1): written without encoding.
    const p = packet as { cmd: string; messageId?: unknown; reasonCode?: unknown; properties?: unknown; dup?: unknown };
    const b0 = fourByteAckHeader(p.cmd, p.messageId, p.reasonCode, p.properties, p.dup, this.protocolVersion);
    if (b0 !== 0) {
      this.transport.writeAck(b0, p.messageId as number);
      return;
    }
    let bytes: Buffer;
    try {
      bytes = this.transport.encode(packet);
    } catch (err) {
      // A packet we cannot encode is a bug, never a reason to crash the process.
      this.deps.logger.error({ err, clientId: this.clientId, cmd: packet.cmd }, 'encode failed');
      void this.close('encode failed');
      return;
    }
    this.transport.write(bytes);
  }

  sendQos0(message: StoredMessage, retain: boolean, subscriptionIds: number[] | undefined): void {
    sendQos0(this, message, retain, subscriptionIds);
  }

  pump(): void {
    pump(this);
  }

  /** Set by `pump` when it stopped because the connection's output is full. */
  waitingForOutput = false;

  /** The transport's output went below its limit again: send what was held back. */
  onWritable(): void {
    if (!this.waitingForOutput) return;
    this.waitingForOutput = false;
    pump(this);
  }

  // ---------------------------------------------------------------- keepalive

  startKeepAlive(): void {
    // The server closes the connection after 1.5x Keep Alive without a packet [MQTT-3.1.2-22]
    // (3.1.1: [MQTT-3.1.2-24]). 0 = no keep-alive mechanism.
    this.keepAliveLimitTicks = this.keepAlive === 0 ? 0 : Math.ceil((this.keepAlive * 1500) / SWEEP_MS) + 1;
  }

  /** Called by the sweep: closes a client past its connect timeout or its keep-alive limit. */
  checkTimeouts(now: number): void {
    // `now` and the recorded ticks are sweep counts (see `tick`).
    if (this.state === 'awaiting-connect' || this.state === 'connecting' || this.state === 'authenticating') {
      if (now >= this.connectDeadline) {
        this.deps.logger.debug({ remote: this.transport.remoteAddress }, 'connect timeout');
        void this.close('connect timeout');
      }
      return;
    }
    if (this.keepAliveLimitTicks > 0 && this.state === 'connected' && now - this.lastActivity >= this.keepAliveLimitTicks) {
      this.deps.logger.debug({ clientId: this.clientId }, 'keepalive timeout');
      this.fail(RC.KeepAliveTimeout, 'keep alive timeout');
    }
  }

  // ---------------------------------------------------------------- errors and closing

  /**
   * A protocol error or limit breach: v5 clients get DISCONNECT with the reason code (and a
   * reason string if they did not opt out [MQTT-3.1.2-29]); 3.x connections are closed
   * [MQTT-4.8.0-1].
   */
  fail(reasonCode: number, reasonString: string): void {
    if (this.state === 'closed') return;
    this.deps.logger.debug({ clientId: this.clientId, reasonCode, reasonString }, 'protocol error');
    if (this.isV5 && this.state === 'connected') {
      this.send({
        cmd: 'disconnect',
        reasonCode,
        properties: this.requestProblemInformation ? { reasonString } : undefined,
      });
    }
    this.close(reasonString);
  }

  /** Server-initiated DISCONNECT with a reason code (takeover, shutdown, admin). */
  kick(reasonCode: number, reasonString?: string): Promise<void> {
    if (this.state === 'closed') return this.closing!;
    if (this.isV5 && this.state === 'connected') {
      this.send({ cmd: 'disconnect', reasonCode, properties: reasonString ? { reasonString } : undefined });
    }
    return this.close(reasonString ?? `disconnected with reason ${reasonCode}`);
  }

  /** Marks whether the will is due when this connection closes (takeover rules). */
  setWillOnClose(publish: boolean): void {
    this.publishWillOnClose = publish;
  }

  /** Closes the connection and detaches the session. Idempotent; resolves when done. */
  close(why: string): Promise<void> {
    if (this.closing) return this.closing;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    unwatch(this);
    this.transport.close();
    this.deps.logger.debug({ clientId: this.clientId, why }, 'connection closed');
    this.closing = (async () => {
      if (wasConnected && this.session) {
        const publishWill = this.gracefulDisconnect ? this.publishWillOnClose : this.publishWillOnClose;
        try {
          await this.broker.detach(this, this.session, publishWill);
        } catch (err) {
          this.deps.logger.warn({ err, clientId: this.clientId }, 'detach failed');
        }
      }
    })();
    return this.closing;
  }

  /** The socket closed under us (error, EOF). */
  onTransportClosed(): void {
    void this.close('connection lost');
  }
}
