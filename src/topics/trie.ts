/**
 * Topic tries (MQTT 5.0 §4.7).
 *
 * - `TopicTrie<T>` indexes subscriptions by Topic FILTER and answers "which filters match this
 *   Topic NAME" — the per-PUBLISH hot path.
 * - `RetainedTrie<T>` indexes retained messages by Topic NAME and answers "which names match this
 *   FILTER" — used when a subscription is made.
 *
 * Both split strings on '/' only; levels are compared as exact strings (case-sensitive, empty
 * levels are ordinary levels, no normalisation [MQTT-4.7.3-4]). Neither validates its input: pass
 * only names/filters that passed `validate.ts`, and pass the inner filter of a `$share/` filter.
 * Neither may be modified from inside a visit callback.
 */

const DOLLAR = 0x24;

export interface Entry<T> {
  key: string;
  value: T;
  filter: string;
}

/** The entries matching one topic name (see `TopicTrie.matchList`). */
export interface MatchResult<T> {
  readonly entries: readonly Entry<T>[];
  /** No key appears twice (no client holds two of the matching filters). */
  readonly distinct: boolean;
  /** The caller's own data derived from `entries`; kept with a cached result, so it is computed
   *  once per topic until the next change. */
  meta: unknown;
}

class FilterNode<T> {
  /** Literal child levels; allocated on first use (most nodes are leaves). */
  children: Map<string, FilterNode<T>> | undefined = undefined;
  /** Child for a '+' level. */
  plus: FilterNode<T> | undefined = undefined;
  /** Child for a trailing '#' level; it only ever holds entries. */
  hash: FilterNode<T> | undefined = undefined;
  /** Subscriptions whose filter ends at this node, by key. */
  entries: Map<string, Entry<T>> | undefined = undefined;

  constructor(
    readonly parent: FilterNode<T> | undefined,
    readonly level: string,
  ) {}

  isEmpty(): boolean {
    return this.entries === undefined && this.children === undefined && this.plus === undefined && this.hash === undefined;
  }
}

export type MatchVisitor<T> = (value: T, key: string, filter: string) => void;

type EntrySink<T> = (e: Entry<T>) => void;

function emit<T>(entries: Map<string, Entry<T>>, sink: EntrySink<T>): void {
  for (const e of entries.values()) sink(e);
}

/**
 * Visits every entry under `node` whose remaining filter levels match `levels[i..]`.
 * Literal descent is a loop; only '+' branches recurse, so the common case has no call overhead.
 */
function walk<T>(node: FilterNode<T>, levels: string[], i: number, visit: EntrySink<T>): void {
  const n = levels.length;
  for (;;) {
    // A '#' child matches whatever is left, including nothing: "sport/#" matches "sport"
    // [MQTT-4.7.1-1] (3.1.1: MQTT-4.7.1-2).
    if (node.hash !== undefined && node.hash.entries !== undefined) emit(node.hash.entries, visit);
    if (i === n) {
      if (node.entries !== undefined) emit(node.entries, visit);
      return;
    }
    const level = levels[i++];
    // '+' matches exactly one level, whatever it is (including an empty one).
    if (node.plus !== undefined) walk(node.plus, levels, i, visit);
    const next = node.children?.get(level);
    if (next === undefined) return;
    node = next;
  }
}

/** Topics whose match results are kept (see `TopicTrie.match`). */
const CACHE_TOPICS = 16_384;
/** Entries (filter matches) kept over all cached topics. */
const CACHE_ENTRIES = 131_072;
/** Matches without the cache after a fill that was mostly misses (distinct topics). */
const CACHE_BYPASS = 65_536;

/**
 * Subscription index: stored Topic Filters, matched against a Topic Name.
 *
 * Match results are cached by topic name until the next `add`, `remove` or `clear`: most traffic
 * repeats a bounded set of topics (one topic fanned out, a fleet's telemetry topics), and a hit
 * costs one Map lookup instead of splitting the name and walking the trie (an array and a string
 * per level, per message). The cache is bounded in topics and in entries; when it fills with a
 * hit rate below one half (mostly distinct topics) it is emptied and bypassed for a while.
 */
export class TopicTrie<T> {
  private root = new FilterNode<T>(undefined, '');
  private count = 0;
  private cache = new Map<string, MatchResult<T>>();
  private cachedEntries = 0;
  private hits = 0;
  private misses = 0;
  private bypass = 0;

  /** Number of (filter, key) entries. */
  get size(): number {
    return this.count;
  }

  /** Stores `value` for `key` under `filter`. Returns true if the (filter, key) pair is new;
   *  otherwise the value is replaced. */
  add(filter: string, key: string, value: T): boolean {
    let node = this.root;
    for (const level of filter.split('/')) {
      let next: FilterNode<T> | undefined;
      if (level === '+') next = node.plus ??= new FilterNode(node, level);
      else if (level === '#') next = node.hash ??= new FilterNode(node, level);
      else {
        const children = (node.children ??= new Map());
        next = children.get(level);
        if (next === undefined) children.set(level, (next = new FilterNode(node, level)));
      }
      node = next;
    }
    const entries = (node.entries ??= new Map());
    const existing = entries.get(key);
    if (existing !== undefined) {
      existing.value = value;
      this.invalidate(); // a result's `meta` may hold the old value
      return false;
    }
    entries.set(key, { key, value, filter });
    this.count++;
    this.invalidate();
    return true;
  }

  /** Removes the (filter, key) entry and prunes nodes left empty. Returns true if it existed. */
  remove(filter: string, key: string): boolean {
    let node = this.find(filter);
    if (node?.entries === undefined || !node.entries.delete(key)) return false;
    this.count--;
    this.invalidate();
    if (node.entries.size === 0) node.entries = undefined;
    // Unlink empty nodes bottom-up so dead branches cost neither memory nor match time.
    while (node.parent !== undefined && node.isEmpty()) {
      const parent: FilterNode<T> = node.parent;
      if (parent.plus === node) parent.plus = undefined;
      else if (parent.hash === node) parent.hash = undefined;
      else if (parent.children !== undefined) {
        parent.children.delete(node.level);
        if (parent.children.size === 0) parent.children = undefined;
      }
      node = parent;
    }
    return true;
  }

  get(filter: string, key: string): T | undefined {
    return this.find(filter)?.entries?.get(key)?.value;
  }

  /**
   * Calls `visit` once per (filter, key) entry whose filter matches `topic`. A key subscribed
   * with several overlapping filters is visited once per filter; de-duplication is the caller's.
   */
  match(topic: string, visit: MatchVisitor<T>): void {
    const entries = this.matchList(topic).entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      visit(e.value, e.key, e.filter);
    }
  }

  /**
   * The entries whose filter matches `topic` (as `match` visits them), from the cache when the
   * topic was matched since the last change. The result must not be modified (but `meta`).
   */
  matchList(topic: string): MatchResult<T> {
    const cached = this.cache.get(topic);
    if (cached !== undefined) {
      this.hits++;
      return cached;
    }
    if (this.bypass > 0) {
      this.bypass--;
      return this.compute(topic);
    }
    this.misses++;
    if (this.cache.size >= CACHE_TOPICS || this.cachedEntries >= CACHE_ENTRIES) {
      const mostlyMisses = this.hits < this.misses;
      this.invalidate();
      if (mostlyMisses) {
        this.bypass = CACHE_BYPASS;
        return this.compute(topic);
      }
    }
    const result = this.compute(topic);
    this.cache.set(topic, result);
    this.cachedEntries += result.entries.length + 1;
    return result;
  }

  private compute(topic: string): MatchResult<T> {
    const entries: Entry<T>[] = [];
    this.walkTopic(topic, (e) => entries.push(e));
    let distinct = true;
    if (entries.length > 1) {
      const keys = new Set<string>();
      for (const e of entries) {
        if (keys.has(e.key)) distinct = false;
        keys.add(e.key);
      }
    }
    return { entries, distinct, meta: undefined };
  }

  /** Number of topics whose match result is cached (for tests). */
  get cachedTopics(): number {
    return this.cache.size;
  }

  private invalidate(): void {
    if (this.cache.size > 0) this.cache = new Map();
    this.cachedEntries = 0;
    this.hits = 0;
    this.misses = 0;
  }

  private walkTopic(topic: string, visit: EntrySink<T>): void {
    const levels = topic.split('/');
    if (topic.charCodeAt(0) === DOLLAR) {
      // [MQTT-4.7.2-1] filters starting with '+' or '#' do not match names starting with '$':
      // skip the root's wildcard children and start from the literal first level.
      const first = this.root.children?.get(levels[0]);
      if (first !== undefined) walk(first, levels, 1, visit);
    } else {
      walk(this.root, levels, 0, visit);
    }
  }

  /** The distinct filters that currently hold at least one entry. */
  *filters(): IterableIterator<string> {
    const stack: FilterNode<T>[] = [this.root];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      if (node.entries !== undefined) {
        // All entries of a node share one filter.
        for (const e of node.entries.values()) {
          yield e.filter;
          break;
        }
      }
      if (node.children !== undefined) for (const c of node.children.values()) stack.push(c);
      if (node.plus !== undefined) stack.push(node.plus);
      if (node.hash !== undefined) stack.push(node.hash);
    }
  }

  clear(): void {
    this.root = new FilterNode<T>(undefined, '');
    this.count = 0;
    this.invalidate();
  }

  private find(filter: string): FilterNode<T> | undefined {
    let node: FilterNode<T> | undefined = this.root;
    for (const level of filter.split('/')) {
      if (level === '+') node = node.plus;
      else if (level === '#') node = node.hash;
      else node = node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node;
  }
}

interface Retained<T> {
  topic: string;
  value: T;
}

class NameNode<T> {
  children: Map<string, NameNode<T>> | undefined = undefined;
  /** The retained entry whose topic ends at this node. */
  entry: Retained<T> | undefined = undefined;

  constructor(
    readonly parent: NameNode<T> | undefined,
    readonly level: string,
  ) {}
}

export type RetainedVisitor<T> = (topic: string, value: T) => void;

function visitSubtree<T>(node: NameNode<T>, skipDollar: boolean, visit: RetainedVisitor<T>): void {
  if (node.entry !== undefined) visit(node.entry.topic, node.entry.value);
  if (node.children === undefined) return;
  for (const child of node.children.values()) {
    if (skipDollar && child.level.charCodeAt(0) === DOLLAR) continue;
    visitSubtree(child, false, visit);
  }
}

/** Visits stored names under `node` matching filter levels `levels[i..]`. */
function walkFilter<T>(node: NameNode<T>, levels: string[], i: number, visit: RetainedVisitor<T>): void {
  const n = levels.length;
  for (;;) {
    if (i === n) {
      if (node.entry !== undefined) visit(node.entry.topic, node.entry.value);
      return;
    }
    const level = levels[i];
    // [MQTT-4.7.2-1] a wildcard in the first filter level never reaches a '$' name.
    if (level === '#') {
      // Matches this node ("sport/#" matches "sport") and everything below [MQTT-4.7.1-1].
      // At the root there is no entry (names have at least one level), so this is just the tree.
      visitSubtree(node, i === 0, visit);
      return;
    }
    if (node.children === undefined) return;
    if (level === '+') {
      for (const child of node.children.values()) {
        if (i === 0 && child.level.charCodeAt(0) === DOLLAR) continue;
        walkFilter(child, levels, i + 1, visit);
      }
      return;
    }
    const next = node.children.get(level);
    if (next === undefined) return;
    node = next;
    i++;
  }
}

/** Retained message index: stored Topic Names, queried by Topic Filter. */
export class RetainedTrie<T> {
  private root = new NameNode<T>(undefined, '');
  /** Exact-name index for get/delete/iteration without a walk. */
  private readonly byTopic = new Map<string, Retained<T>>();

  get size(): number {
    return this.byTopic.size;
  }

  /** Stores or replaces the value for `topic`. Returns true if the topic is new. */
  set(topic: string, value: T): boolean {
    const existing = this.byTopic.get(topic);
    if (existing !== undefined) {
      existing.value = value;
      return false;
    }
    let node = this.root;
    for (const level of topic.split('/')) {
      const children = (node.children ??= new Map());
      let next = children.get(level);
      if (next === undefined) children.set(level, (next = new NameNode(node, level)));
      node = next;
    }
    const entry = { topic, value };
    node.entry = entry;
    this.byTopic.set(topic, entry);
    return true;
  }

  get(topic: string): T | undefined {
    return this.byTopic.get(topic)?.value;
  }

  /** Removes `topic` and prunes nodes left empty. Returns true if it was stored. */
  delete(topic: string): boolean {
    if (!this.byTopic.delete(topic)) return false;
    let node: NameNode<T> = this.root;
    for (const level of topic.split('/')) node = node.children!.get(level)!; // present: it is indexed
    node.entry = undefined;
    while (node.parent !== undefined && node.entry === undefined && node.children === undefined) {
      const parent: NameNode<T> = node.parent;
      parent.children!.delete(node.level);
      if (parent.children!.size === 0) parent.children = undefined;
      node = parent;
    }
    return true;
  }

  /** Calls `visit` once for every stored topic that `filter` matches. */
  matchFilter(filter: string, visit: RetainedVisitor<T>): void {
    walkFilter(this.root, filter.split('/'), 0, visit);
  }

  *values(): IterableIterator<T> {
    for (const e of this.byTopic.values()) yield e.value;
  }

  *entries(): IterableIterator<[topic: string, value: T]> {
    for (const e of this.byTopic.values()) yield [e.topic, e.value];
  }

  clear(): void {
    this.root = new NameNode<T>(undefined, '');
    this.byTopic.clear();
  }
}
