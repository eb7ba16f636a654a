/**
 * `MemoryStore`: the whole state in plain maps (`StoreState`). Used alone for `durability: none`
 * and, with a `Journal`, as the state core of the embedded store: every mutation is handed to the
 * journal and applied to memory in the same synchronous step, so the journal sees mutations in
 * exactly the order they are applied, and the call resolves when the journal says it is durable.
 */
import type {
  PublishCommit,
  PublishCommitResult,
  SessionRecord,
  SessionSnapshot,
  Store,
  StoredMessage,
  SubscriptionRecord,
  TakeSessionResult,
} from '../types.js';
import { StoreState, type Mutation } from './state.js';

export interface Journal {
  /** Throws (a `StoreError`) when the store cannot be used: not open, closed, or failed. */
  guard(): void;
  /**
   * Records a mutation (`null`: the call changes nothing, but its answer may depend on earlier
   * mutations, so it must not resolve before they are durable). Called right before the mutation
   * is applied, in the same synchronous step, so in apply order; it must serialize the mutation at
   * once (apply takes ownership of its objects). Resolves when the mutation is durable.
   */
  record(mutation: Mutation | null): Promise<void>;
}

export interface MemoryStoreOptions {
  /** State to work on (the embedded store passes the one it replays its log into). */
  state?: StoreState;
  journal?: Journal;
}

export class MemoryStore implements Store {
  readonly state: StoreState;
  private readonly journal: Journal | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.state = options.state ?? new StoreState();
    this.journal = options.journal;
  }

  async open(): Promise<void> {}

  async close(): Promise<void> {}

  /** Hands a planned mutation to the journal and applies it, in one synchronous step (journal
   *  first: if it cannot take the mutation, nothing is applied). */
  private commit(mutation: Mutation | null): Promise<void> | undefined {
    const durable = this.journal?.record(mutation);
    if (mutation) this.state.apply(mutation);
    return durable;
  }

  private guard(): void {
    this.journal?.guard();
  }

  /** Reads answer from memory, but only once every mutation they reflect is durable: a caller
   *  never acts on state that a crash could still take back. */
  private async read<T>(answer: () => T): Promise<T> {
    this.guard();
    const result = answer();
    await this.journal?.record(null);
    return result;
  }

  // ---- sessions ----

  async takeSession(record: SessionRecord, cleanStart: boolean): Promise<TakeSessionResult> {
    this.guard();
    const { mutation, result } = this.state.planTake(record, cleanStart);
    await this.commit(mutation);
    return result;
  }

  async updateSession(record: SessionRecord, epoch: number): Promise<void> {
    this.guard();
    await this.commit(this.state.planUpdate(record, epoch));
  }

  async deleteSession(clientId: string, epoch?: number): Promise<void> {
    this.guard();
    await this.commit(this.state.planDelete(clientId, epoch));
  }

  getSession(clientId: string): Promise<SessionSnapshot | undefined> {
    return this.read(() => this.state.getSession(clientId));
  }

  listSessions(): Promise<Array<{ record: SessionRecord; epoch: number }>> {
    return this.read(() => this.state.listSessions());
  }

  // ---- subscriptions ----

  async addSubscriptions(clientId: string, epoch: number, subs: SubscriptionRecord[]): Promise<void> {
    this.guard();
    await this.commit(this.state.planSubscribe(clientId, epoch, subs));
  }

  async removeSubscriptions(clientId: string, epoch: number, filters: string[]): Promise<void> {
    this.guard();
    await this.commit(this.state.planUnsubscribe(clientId, epoch, filters));
  }

  listSubscriptions(): Promise<Array<{ clientId: string; subscription: SubscriptionRecord }>> {
    return this.read(() => this.state.listSubscriptions());
  }

  // ---- messages ----

  async commitPublish(commit: PublishCommit): Promise<PublishCommitResult> {
    this.guard();
    const { mutation, result } = this.state.planPublish(commit);
    await this.commit(mutation);
    return result;
  }

  async markSent(clientId: string, epoch: number, seq: number, packetId: number): Promise<void> {
    this.guard();
    await this.commit(this.state.planSent(clientId, epoch, seq, packetId));
  }

  async markReleased(clientId: string, epoch: number, packetId: number): Promise<void> {
    this.guard();
    await this.commit(this.state.planReleased(clientId, epoch, packetId));
  }

  async completeDelivery(clientId: string, epoch: number, packetId: number): Promise<void> {
    this.guard();
    await this.commit(this.state.planComplete(clientId, epoch, packetId));
  }

  async dropDeliveries(clientId: string, epoch: number, seqs: number[]): Promise<void> {
    this.guard();
    await this.commit(this.state.planDrop(clientId, epoch, seqs));
  }

  async updateDeliveries(clientId: string, epoch: number, ops: readonly number[]): Promise<void> {
    this.guard();
    await this.commit(this.state.planDeliveries(clientId, epoch, ops));
  }

  // ---- inbound QoS 2 ----

  async addIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void> {
    this.guard();
    await this.commit(this.state.planQos2Add(clientId, epoch, packetId));
  }

  async removeIncomingQos2(clientId: string, epoch: number, packetId: number): Promise<void> {
    this.guard();
    await this.commit(this.state.planQos2Remove(clientId, epoch, packetId));
  }

  // ---- retained ----

  listRetained(): Promise<StoredMessage[]> {
    return this.read(() => this.state.listRetained());
  }
}
