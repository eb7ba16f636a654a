/**
 * `$SYS/broker/...` topics in Mosquitto's layout, published retained at an interval through the
 * broker's own publish entry point (they are kept in memory only, never in the store).
 */
import { Buffer } from 'node:buffer';
import type { Broker } from './broker.js';

export class SysPublisher {
  private timer: NodeJS.Timeout | undefined;
  private maxConnected = 0;

  constructor(
    private readonly broker: Broker,
    private readonly version: string,
    private readonly intervalMs: number,
    /** In a cluster: totals over every node (`$SYS/cluster/...`), read from the shared state. */
    private readonly clusterTotals?: () => Promise<Record<string, string>>,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.publish('$SYS/broker/version', `skein version ${this.version}`);
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The values published at each interval, by topic (also used by tests and the admin API). */
  snapshot(): Record<string, string> {
    const b = this.broker;
    const s = b.stats;
    const { connected, sessions } = b.clientCounts;
    if (connected > this.maxConnected) this.maxConnected = connected;
    const disconnected = sessions - connected;
    const mem = process.memoryUsage();
    return {
      '$SYS/broker/uptime': `${Math.floor((Date.now() - s.startedAt) / 1000)} seconds`,
      '$SYS/broker/clients/connected': String(connected),
      '$SYS/broker/clients/active': String(connected),
      '$SYS/broker/clients/disconnected': String(disconnected < 0 ? 0 : disconnected),
      '$SYS/broker/clients/inactive': String(disconnected < 0 ? 0 : disconnected),
      '$SYS/broker/clients/total': String(sessions),
      '$SYS/broker/clients/maximum': String(this.maxConnected),
      '$SYS/broker/messages/received': String(s.messagesReceived),
      '$SYS/broker/messages/sent': String(s.messagesSent),
      '$SYS/broker/publish/messages/received': String(s.publishReceived),
      '$SYS/broker/publish/messages/sent': String(s.publishSent),
      '$SYS/broker/publish/messages/dropped': String(s.droppedTotal),
      '$SYS/broker/bytes/received': String(s.bytesReceived),
      '$SYS/broker/bytes/sent': String(s.bytesSent),
      '$SYS/broker/retained messages/count': String(b.retainedCount),
      '$SYS/broker/subscriptions/count': String(b.subscriptionCount),
      '$SYS/broker/heap/current': String(mem.heapUsed),
    };
  }

  private tick(): void {
    for (const [topic, value] of Object.entries(this.snapshot())) this.publish(topic, value);
    this.clusterTotals?.().then(
      (totals) => {
        for (const [topic, value] of Object.entries(totals)) this.publish(topic, value);
      },
      () => undefined, // Redis unreachable: totals resume with the next interval
    );
  }

  private publish(topic: string, value: string): void {
    const b = this.broker;
    b.publish(
      { id: b.nextMessageId(), topic, payload: Buffer.from(value), qos: 0, retain: true, createdAt: Date.now() },
      { volatile: true },
    ).catch(() => undefined);
  }
}
