/**
 * Group commit: the frames enqueued during one event-loop turn are handed to `writeBatch` together
 * (one write, one fdatasync), and only then are their promises resolved. While a batch is being
 * written, new frames wait and go out together in the next batch, so throughput grows with load
 * while an idle store still writes each mutation at once.
 *
 * After a failed batch the committer is failed for good: the in-memory state already holds
 * mutations the disk may not, so the only safe answer to every later call is an error (restart
 * the store to recover from the log).
 */
import { StoreError } from '../types.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class GroupCommitter {
  private frames: Buffer[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  private running = false;
  private forced = false;
  private failure: StoreError | undefined;

  /** `writeBatch` gets the frames of one batch (maybe none, for a forced run) and is never called
   *  again before its promise settles. */
  constructor(private readonly writeBatch: (frames: Buffer[]) => Promise<void>) {}

  get error(): StoreError | undefined {
    return this.failure;
  }

  get idle(): boolean {
    return !this.running && !this.scheduled && this.waiters.length === 0;
  }

  /**
   * Queues a frame; resolves once it is written. `null` queues nothing and resolves once everything
   * queued before is written. `force` makes `writeBatch` run even when there is nothing to write.
   */
  enqueue(frame: Buffer | null, force = false): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (frame === null && !force && this.idle) return Promise.resolve();
    if (frame) this.frames.push(frame);
    if (force) this.forced = true;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    // setImmediate runs after the current turn (including its promise jobs), so everything the
    // turn enqueued joins one batch.
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    this.scheduled = false;
    this.running = true;
    const frames = this.frames;
    const waiters = this.waiters;
    const forced = this.forced;
    this.frames = [];
    this.waiters = [];
    this.forced = false;
    try {
      if (frames.length > 0 || forced) await this.writeBatch(frames);
      for (const w of waiters) w.resolve();
    } catch (err) {
      this.failure = err instanceof StoreError ? err : new StoreError('writing the store log failed', { cause: err });
      for (const w of [...waiters, ...this.waiters]) w.reject(this.failure);
      this.frames = [];
      this.waiters = [];
    } finally {
      this.running = false;
    }
    if (this.waiters.length > 0) this.schedule();
  }
}
