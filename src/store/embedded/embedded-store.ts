/**
 * `EmbeddedStore`: the default single-node store. The whole state lives in memory (`StoreState`,
 * driven through `MemoryStore`) and every mutation is appended to a log file (Redis-AOF style),
 * with group commit: one write (and with `fsync` durability one fdatasync) per event-loop turn,
 * before the promises of that turn's mutations resolve.
 *
 * Files (see README.md): `skein-<gen>.snap` holds the state at the start of generation `gen`,
 * `skein-<gen>.log` the mutations made during it. Opening loads the newest valid snapshot and
 * replays the logs from its generation on; a torn or corrupt tail is truncated with a warning.
 *
 * Compaction, when the log is over `compactThresholdBytes` and over twice the live state:
 *  1. between two batches, clone the state (it is exactly "everything written to log N"; the clone
 *     is cheap, see `StoreState.clone`) and create `log N+1`; new batches go there; (`log-switched`)
 *  2. serialize the clone into `snap N+1.tmp` in the background, fsync it; (`snapshot-written`)
 *  3. rename it to `snap N+1`, fsync the directory;                        (`snapshot-renamed`)
 *  4. delete every file of generations < N+1.                             (`old-files-removed`)
 * A crash before 3 leaves snap N (if any) + logs N, N+1: replayed in order, same state. A crash
 * after 3 leaves snap N+1 + log N+1 (+ leftovers of N, ignored and deleted). A `.tmp` is always
 * garbage.
 */
import { Buffer } from 'node:buffer';
import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { MemoryStore } from '../memory/memory-store.js';
import { StoreState, type Mutation } from '../memory/state.js';
import {
  StoreError,
  type PublishCommit,
  type PublishCommitResult,
  type SessionRecord,
  type SessionSnapshot,
  type Store,
  type StoredMessage,
  type SubscriptionRecord,
  type TakeSessionResult,
} from '../types.js';
import { decodePayload, encodeFrame, FrameReader } from './codec.js';
import { acquireDirLock, fsyncDir, fsyncDirSync, listGenerations, logName, snapName, tmpSnapName } from './files.js';
import { GroupCommitter } from './group-commit.js';
import { FORMAT_VERSION, loadSnapshot, writeFully, writeSnapshotTo } from './snapshot.js';

export type CompactionStep = 'log-switched' | 'snapshot-written' | 'snapshot-renamed' | 'old-files-removed';

export interface EmbeddedStoreOptions {
  dir: string;
  /** `write`: a batch is handed to the OS before it resolves (survives a process crash / kill -9).
   *  `fsync`: it is also fdatasync'ed (survives OS crash and power loss). */
  durability: 'write' | 'fsync';
  /** Compact once the log is larger than this and larger than twice the live state (64 MiB). */
  compactThresholdBytes?: number;
  logger?: { warn(obj: object, msg?: string): void };
  /** Test hook, awaited at each compaction step (tests copy the directory to simulate crashes). */
  onCompactionStep?: (step: CompactionStep) => void | Promise<void>;
}

export interface EmbeddedStoreStats {
  /** Current log generation. */
  generation: number;
  /** Size of the current log file. */
  logBytes: number;
  /** Writes (batches) to the log since open. */
  batches: number;
  /** Mutation records written since open. */
  records: number;
  /** fdatasync calls on the log since open. */
  syncs: number;
  /** Compactions completed since open. */
  compactions: number;
}

const DEFAULT_COMPACT_THRESHOLD = 64 * 1024 * 1024;
const defaultLogger = { warn: (obj: object, msg?: string) => console.warn(`[skein store] ${msg ?? ''}`, obj) };

export class EmbeddedStore implements Store {
  private readonly dir: string;
  private readonly durability: 'write' | 'fsync';
  private readonly threshold: number;
  private readonly logger: { warn(obj: object, msg?: string): void };
  private readonly onStep: EmbeddedStoreOptions['onCompactionStep'];
  private readonly state = new StoreState();
  private readonly core: MemoryStore;
  private readonly committer: GroupCommitter;

  private status: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new';
  private releaseLock: (() => void) | undefined;
  private log: FileHandle | undefined;
  private gen = 0;
  private logBytes = 0;
  private nextCompactionCheck = 0;
  private forceCompaction = false;
  private compaction: Promise<void> | undefined;
  private readonly counters = { batches: 0, records: 0, syncs: 0, compactions: 0 };

  constructor(opts: EmbeddedStoreOptions) {
    this.dir = opts.dir;
    this.durability = opts.durability;
    this.threshold = opts.compactThresholdBytes ?? DEFAULT_COMPACT_THRESHOLD;
    this.logger = opts.logger ?? defaultLogger;
    this.onStep = opts.onCompactionStep;
    this.committer = new GroupCommitter((frames) => this.writeBatch(frames));
    this.core = new MemoryStore({
      state: this.state,
      journal: { guard: () => this.guard(), record: (m) => this.record(m) },
    });
  }

  get stats(): EmbeddedStoreStats {
    return { generation: this.gen, logBytes: this.logBytes, ...this.counters };
  }

  // ---- lifecycle ----

  async open(): Promise<void> {
    if (this.status !== 'new') throw new StoreError(`embedded store: open() called twice`);
    this.status = 'opening';
    try {
      mkdirSync(this.dir, { recursive: true });
      this.releaseLock = acquireDirLock(this.dir);
      this.recover();
      this.log = await open(join(this.dir, logName(this.gen)), 'a');
      this.status = 'open';
    } catch (err) {
      this.status = 'closed';
      this.releaseLock?.();
      throw err instanceof StoreError ? err : new StoreError(`embedded store: cannot open ${this.dir}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.status !== 'open') return;
    this.status = 'closing';
    await this.committer.enqueue(null).catch(() => undefined);
    await this.compaction;
    await this.log?.close().catch(() => undefined);
    this.log = undefined;
    this.releaseLock?.();
    this.status = 'closed';
  }

  /** Compacts now (whatever the thresholds); resolves when the snapshot is written. */
  async compact(): Promise<void> {
    this.guard();
    await this.compaction;
    this.forceCompaction = true;
    await this.committer.enqueue(null, true);
    await this.compaction;
  }

  private guard(): void {
    if (this.status !== 'open') {
      throw new StoreError(`embedded store is ${this.status === 'new' || this.status === 'opening' ? 'not open' : 'closed'}`);
    }
    const failure = this.committer.error;
    if (failure) throw failure;
  }

  // ---- recovery (synchronous, at open) ----

  private recover(): void {
    const { logs, snaps, tmps } = listGenerations(this.dir);
    for (const name of tmps) unlinkSync(join(this.dir, name));

    let base = 0;
    for (const gen of [...snaps].reverse()) {
      try {
        this.state.clear();
        loadSnapshot(join(this.dir, snapName(gen)), gen, this.state);
        base = gen;
        break;
      } catch (err) {
        this.logger.warn({ file: snapName(gen), err }, 'embedded store: ignoring unreadable snapshot');
        this.state.clear();
      }
    }
    const first = Math.max(base, 1);
    const replay = logs.filter((gen) => gen >= first);
    replay.forEach((gen, i) => {
      if (gen !== first + i) {
        throw new StoreError(`embedded store: ${logName(first + i)} is missing in ${this.dir}; refusing to open with lost data`);
      }
    });

    replay.forEach((gen) => this.replayLog(gen));
    this.gen = replay.at(-1) ?? first;
    const active = join(this.dir, logName(this.gen));
    const fd = openSync(active, 'a');
    try {
      let size = fstatSync(fd).size;
      if (size === 0) {
        size = writeSync(fd, encodeFrame({ t: 'log', v: FORMAT_VERSION, gen: this.gen }));
        fsyncSync(fd);
      }
      this.logBytes = size;
    } finally {
      closeSync(fd);
    }

    for (const gen of logs) if (gen < base) unlinkSync(join(this.dir, logName(gen)));
    for (const gen of snaps) if (gen < base) unlinkSync(join(this.dir, snapName(gen)));
    fsyncDirSync(this.dir);
  }

  private replayLog(gen: number): void {
    const file = logName(gen);
    const fd = openSync(join(this.dir, file), 'r+');
    try {
      const size = fstatSync(fd).size;
      const reader = new FrameReader(fd, size);
      for (let index = 0; ; index++) {
        const frame = reader.next();
        if (frame.kind === 'eof') return;
        if (frame.kind === 'bad') {
          this.logger.warn(
            { file, offset: frame.start, droppedBytes: size - frame.start, reason: frame.reason },
            'embedded store: truncating torn or corrupt log tail',
          );
          ftruncateSync(fd, frame.start);
          fsyncSync(fd);
          return;
        }
        let record: Record<string, unknown>;
        try {
          record = decodePayload(frame.payload) as Record<string, unknown>;
        } catch (err) {
          throw new StoreError(`embedded store: undecodable record with a valid checksum in ${file} at ${frame.start}`, { cause: err });
        }
        if (index === 0) {
          if (record['t'] !== 'log' || record['v'] !== FORMAT_VERSION) {
            throw new StoreError(`embedded store: ${file} does not start with a log header`);
          }
          continue;
        }
        this.state.apply(record as unknown as Mutation);
      }
    } finally {
      closeSync(fd);
    }
  }

  // ---- writing ----

  /** Journal hook of the core: called in apply order, in the same synchronous step as apply. */
  private record(mutation: Mutation | null): Promise<void> {
    if (mutation) this.counters.records += 1;
    return this.committer.enqueue(mutation ? encodeFrame(mutation) : null);
  }

  private async writeBatch(frames: Buffer[]): Promise<void> {
    // Decided and copied before writing: the state now holds exactly what the log will hold once
    // this batch is written (later mutations wait in the committer).
    const snapshot = this.compactionDue() ? this.state.clone() : undefined;
    const log = this.log;
    if (!log) throw new StoreError('embedded store: log is not open');
    if (frames.length > 0) {
      const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
      await writeFully(log, data);
      this.logBytes += data.length;
      this.counters.batches += 1;
      if (this.durability === 'fsync') {
        await log.datasync();
        this.counters.syncs += 1;
      }
    }
    if (snapshot) await this.switchLog(snapshot);
  }

  private compactionDue(): boolean {
    if (this.compaction || this.status !== 'open') return false;
    if (this.forceCompaction) {
      this.forceCompaction = false;
      return true;
    }
    if (this.logBytes < this.threshold || this.logBytes < this.nextCompactionCheck) return false;
    if (this.logBytes > 2 * this.state.estimateBytes()) return true;
    // The live state is large: look again once the log has grown a quarter threshold more.
    this.nextCompactionCheck = this.logBytes + Math.ceil(this.threshold / 4);
    return false;
  }

  /** Step 1 of compaction: new batches go to the next generation's log. */
  private async switchLog(snapshot: StoreState): Promise<void> {
    const next = this.gen + 1;
    const path = join(this.dir, logName(next));
    let handle: FileHandle | undefined;
    let headerBytes = 0;
    try {
      // Log N must be on disk before log N+1 can be: replay never sees N+1 after a hole in N.
      if (this.durability === 'write') await this.log?.datasync();
      handle = await open(path, 'w');
      const header = encodeFrame({ t: 'log', v: FORMAT_VERSION, gen: next });
      await writeFully(handle, header);
      await handle.datasync();
      await fsyncDir(this.dir);
      headerBytes = header.length;
    } catch (err) {
      // The batch itself is written; keep using the current log and try again later.
      this.logger.warn({ file: logName(next), err }, 'embedded store: cannot start a new log, compaction postponed');
      await handle?.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      this.nextCompactionCheck = this.logBytes + this.threshold;
      return;
    }
    const previous = this.log;
    this.log = handle;
    this.gen = next;
    this.logBytes = headerBytes;
    this.nextCompactionCheck = 0;
    await previous?.close().catch(() => undefined);
    this.compaction = this.writeSnapshot(next, snapshot).finally(() => {
      this.compaction = undefined;
    });
  }

  /** Steps 2 to 4, in the background while new batches go to the new log. */
  private async writeSnapshot(gen: number, snapshot: StoreState): Promise<void> {
    const tmp = join(this.dir, tmpSnapName(gen));
    try {
      await this.onStep?.('log-switched');
      const handle = await open(tmp, 'w');
      try {
        await writeSnapshotTo(handle, snapshot, gen);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.onStep?.('snapshot-written');
      await rename(tmp, join(this.dir, snapName(gen)));
      await fsyncDir(this.dir);
      await this.onStep?.('snapshot-renamed');
      const { logs, snaps } = listGenerations(this.dir);
      for (const old of logs) if (old < gen) await unlink(join(this.dir, logName(old)));
      for (const old of snaps) if (old < gen) await unlink(join(this.dir, snapName(old)));
      await fsyncDir(this.dir);
      this.counters.compactions += 1;
      await this.onStep?.('old-files-removed');
    } catch (err) {
      // Nothing is lost: the logs since the last good snapshot are all still there.
      this.logger.warn({ file: snapName(gen), err }, 'embedded store: compaction failed');
      await unlink(tmp).catch(() => undefined);
      this.nextCompactionCheck = this.logBytes + this.threshold;
    }
  }

  // ---- Store ----

  takeSession(record: SessionRecord, cleanStart: boolean): Promise<TakeSessionResult> {
    return this.core.takeSession(record, cleanStart);
  }
  updateSession(record: SessionRecord, epoch: number): Promise<void> {
    return this.core.updateSession(record, epoch);
  }
  deleteSession(clientId: string, epoch?: number): Promise<void> {
    return this.core.deleteSession(clientId, epoch);
  }
  getSession(clientId: string): Promise<SessionSnapshot | undefined> {
    return this.core.getSession(clientId);
  }
  listSessions(): Promise<Array<{ record: SessionRecord; epoch: number }>> {
    return this.core.listSessions();
  }
  addSubscriptions(clientId: string, epoch: number, subs: SubscriptionRecord[]): Promise<void> {
    return this.core.addSubscriptions(clientId, epoch, subs);
  }
  removeSubscriptions(clientId: string, epoch: number, filters: string[]): Promise<void> {
    return this.core.removeSubscriptions(clientId, epoch, filters);
  }
  listSubscriptions(): Promise<Array<{ clientId: string; subscription: SubscriptionRecord }>> {
    return this.core.listSubscriptions();
  }
  commitPublish(commit: PublishCommit): Promise<PublishCommitResult> {
    return this.core.commitPublish(commit);
  }
  markSent(clientId: string, epoch: number, seq: number, packetId: number): Promise<void> {
    return this.core.markSent(clientId, epoch, seq, packetId);
  }
  markReleased(clientId: string, epoch: number, packetId: number): Promise<void> {
    return this.core.markReleased(clientId, epoch, packetId);
  }
  completeDelivery(clientId: string, epoch: number, packetId: number): Promise<void> {
    return this.core.completeDelivery(clientId, epoch, packetId);
  }
  dropDeliveries(clientId: string, epoch: number, seqs: number[]): Promise<void> {
    return this.core.dropDeliveries(clientId, epoch, seqs);
  }
  updateDeliveries(clientId: string, epoch: number, ops: readonly number[]): Promise<void> {
    return this.core.updateDeliveries(clientId, epoch, ops);
  }
  addIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void> {
    return this.core.addIncomingQos2(clientId, epoch, packetId);
  }
  removeIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void> {
    return this.core.removeIncomingQos2(clientId, epoch, packetId);
  }
  listRetained(): Promise<StoredMessage[]> {
    return this.core.listRetained();
  }
}
