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

/** The promise every caller of one batch gets (one per batch, not one per frame). */
interface Batch {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((ok, ko) => {
    resolve = ok;
    reject = ko;
  });
  return { promise, resolve, reject };
}

export class GroupCommitter {
  private frames: Buffer[] = [];
  /** The batch being gathered (the next to be written); undefined = nobody waits. */
  private next: Batch | undefined;
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
    return !this.running && !this.scheduled && this.next === undefined;
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
    const batch = (this.next ??= newBatch());
    this.schedule();
    return batch.promise;
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
    const batch = this.next;
    const forced = this.forced;
    this.frames = [];
    this.next = undefined;
    this.forced = false;
    try {
      if (frames.length > 0 || forced) await this.writeBatch(frames);
      batch?.resolve();
    } catch (err) {
      this.failure = err instanceof StoreError ? err : new StoreError('writing the store log failed', { cause: err });
      batch?.reject(this.failure);
      (this.next as Batch | undefined)?.reject(this.failure); // frames enqueued while this batch was written
      this.frames = [];
      this.next = undefined;
    } finally {
      this.running = false;
    }
    if ((this.next as Batch | undefined) !== undefined) this.schedule();
  }
}
