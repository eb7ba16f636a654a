/** Counters the broker keeps for $SYS and (later) Prometheus. Plain numbers: cheap to bump. */
export class BrokerStats {
  readonly startedAt = Date.now();
  messagesReceived = 0;
  messagesSent = 0;
  publishReceived = 0;
  publishSent = 0;
  bytesReceived = 0;
  bytesSent = 0;
  connectionsTotal = 0;
  /** Dropped deliveries by reason: queue_full, expired, qos0_backpressure, too_large, ... */
  readonly dropped: Record<string, number> = Object.create(null);
  /** Limit violations answered with a reason code, by limit name. */
  readonly limitHits: Record<string, number> = Object.create(null);

  drop(reason: string, n = 1): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + n;
  }

  limit(name: string): void {
    this.limitHits[name] = (this.limitHits[name] ?? 0) + 1;
  }

  get droppedTotal(): number {
    let n = 0;
    for (const k in this.dropped) n += this.dropped[k]!;
    return n;
  }
}
