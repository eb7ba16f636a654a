/**
 * Owns one byte stream (TCP, TLS, WebSocket stream...): feeds the decoder, hands packets to the
 * channel one at a time, writes with batching and backpressure. Nothing protocol-specific here.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Decoder, encode } from '../codec/codec.js';
import type { Packet } from '../codec/codec.js';
import { RC, V3_CONNACK } from '../codec/reason-codes.js';
import { Channel, type ChannelDeps, type Transport } from '../channel/channel.js';

export class Connection implements Transport {
  readonly channel: Channel;
  private readonly decoder: Decoder;
  private version: 3 | 4 | 5 = 4;
  private corked = false;
  private ended = false;
  private readonly stats: ChannelDeps['broker']['stats'];

  constructor(
    private readonly stream: Duplex & { remoteAddress?: string; remotePort?: number; setNoDelay?: (b: boolean) => void },
    deps: ChannelDeps,
    private readonly logger: Logger,
    readonly remoteAddress: string = `${stream.remoteAddress ?? 'unknown'}:${stream.remotePort ?? 0}`,
    /** Username from the client's TLS certificate (see Transport.certificateUsername). */
    readonly certificateUsername?: string | null,
  ) {
    stream.setNoDelay?.(true);
    this.channel = new Channel(this, deps);
    this.decoder = new Decoder(
      {
        packet: (p) => this.channel.handle(p),
        error: (e) => this.onDecodeError(e.reasonCode, e.message),
      },
      deps.broker.options.maxPacketSize,
    );
    const stats = (this.stats = deps.broker.stats);
    stream.on('data', (chunk: Buffer) => {
      stats.bytesReceived += chunk.length;
      this.decoder.push(chunk);
    });
    stream.on('error', (err) => this.logger.debug({ err: err.message, remote: this.remoteAddress }, 'socket error'));
    stream.on('close', () => {
      this.ended = true;
      this.channel.onTransportClosed();
    });
    stream.on('end', () => stream.end());
  }

  setProtocolVersion(v: 3 | 4 | 5): void {
    this.version = v;
    this.decoder.protocolVersion = v;
  }

  encode(packet: Packet): Buffer {
    return encode(packet, this.version);
  }

  write(bytes: Buffer): void {
    if (this.ended || this.stream.destroyed) return;
    // Batch every write of one event-loop turn into one syscall.
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      process.nextTick(() => {
        this.corked = false;
        this.stream.uncork();
      });
    }
    this.stats.bytesSent += bytes.length;
    this.stream.write(bytes);
  }

  get bufferedBytes(): number {
    return this.stream.writableLength;
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    // Flush what is written (e.g. CONNACK with an error code, DISCONNECT), then close; a peer
    // that does not read gets destroyed after a short grace period.
    this.stream.end();
    setTimeout(() => this.stream.destroy(), 2000).unref();
  }

  private onDecodeError(reasonCode: number, message: string): void {
    const ch = this.channel;
    this.logger.debug({ clientId: ch.clientId, remote: this.remoteAddress, reasonCode, message }, 'malformed input');
    if (ch.state === 'awaiting-connect' && /protocol version/i.test(message)) {
      // Unsupported protocol level: CONNACK 0x01 (3.1.1 format) then close [MQTT-3.1.2-2].
      this.write(encode({ cmd: 'connack', sessionPresent: false, returnCode: V3_CONNACK.UnacceptableProtocolVersion }, 4));
      void ch.close(message);
      return;
    }
    if (ch.state === 'awaiting-connect' && /protocolId/i.test(message)) {
      // Wrong protocol name: close without CONNACK [MQTT-3.1.2-1].
      void ch.close(message);
      return;
    }
    ch.fail(reasonCode === RC.PacketTooLarge ? RC.PacketTooLarge : RC.MalformedPacket, message);
  }
}
