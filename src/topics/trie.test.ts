import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TopicTrie, RetainedTrie } from './trie.js';

/** Naive reference: the §4.7 matching rules applied level by level. */
function refMatch(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false; // [MQTT-4.7.2-1]
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true; // parent and any number of children
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function matchedFilters(trie: TopicTrie<number>, topic: string): string[] {
  const out: string[] = [];
  trie.match(topic, (_v, _k, filter) => out.push(filter));
  return out.sort();
}

function retainedMatches(trie: RetainedTrie<number>, filter: string): string[] {
  const out: string[] = [];
  trie.matchFilter(filter, (topic) => out.push(topic));
  return out.sort();
}

// [filter, topic, matches] — the examples of MQTT 5.0 §4.7 plus edge cases.
const cases: [string, string, boolean, string][] = [
  ['sport/tennis/player1/#', 'sport/tennis/player1', true, '[MQTT-4.7.1-1] # matches the parent'],
  ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true, '[MQTT-4.7.1-1]'],
  ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true, '[MQTT-4.7.1-1]'],
  ['sport/tennis/player1/#', 'sport/tennis/player2', false, '[MQTT-4.7.1-1]'],
  ['sport/tennis/player1/#', 'sport/tennis', false, '[MQTT-4.7.1-1] not the grandparent'],
  ['sport/#', 'sport', true, '[MQTT-4.7.1-1] sport/# matches sport'],
  ['sport/#', 'sport/', true, '[MQTT-4.7.1-1]'],
  ['sport/#', 'sports', false, '[MQTT-4.7.1-1] levels, not prefixes'],
  ['#', 'sport/tennis', true, '[MQTT-4.7.1-1] # matches everything'],
  ['#', '/', true, '[MQTT-4.7.1-1]'],
  ['sport/tennis/+', 'sport/tennis/player1', true, '[MQTT-4.7.1-2]'],
  ['sport/tennis/+', 'sport/tennis/player1/ranking', false, '[MQTT-4.7.1-2] exactly one level'],
  ['sport/+', 'sport', false, '[MQTT-4.7.1-2] sport/+ does not match sport'],
  ['sport/+', 'sport/', true, '[MQTT-4.7.1-2] + matches an empty level'],
  ['+', 'sport', true, '[MQTT-4.7.1-2]'],
  ['+', '/finance', false, '[MQTT-4.7.1-2] + is one level'],
  ['+/+', '/finance', true, '[MQTT-4.7.1-2] leading empty level'],
  ['/+', '/finance', true, '[MQTT-4.7.1-2]'],
  ['+/tennis/#', 'sport/tennis/player1/ranking', true, '[MQTT-4.7.1-2] mixed'],
  ['+/tennis/#', 'sport/tennis', true, '[MQTT-4.7.1-2] mixed, # parent'],
  ['+/tennis/#', 'sport/golf', false, '[MQTT-4.7.1-2] mixed'],
  ['sport/+/player1', 'sport/tennis/player1', true, '[MQTT-4.7.1-2]'],
  ['+/#', 'a', true, '[MQTT-4.7.1-2] +/# matches one level'],
  ['#', '$SYS/broker/uptime', false, '[MQTT-4.7.2-1] # does not match $SYS'],
  ['+/monitor/Clients', '$SYS/monitor/Clients', false, '[MQTT-4.7.2-1]'],
  ['+', '$SYS', false, '[MQTT-4.7.2-1]'],
  ['+/#', '$SYS/x', false, '[MQTT-4.7.2-1]'],
  ['$SYS/#', '$SYS/broker/uptime', true, '[MQTT-4.7.2-1] explicit $SYS'],
  ['$SYS/#', '$SYS', true, '[MQTT-4.7.2-1] explicit $SYS parent'],
  ['$SYS/monitor/+', '$SYS/monitor/Clients', true, '[MQTT-4.7.2-1]'],
  ['a/#', 'a/$SYS', true, '[MQTT-4.7.2-1] $ only matters in the first level'],
  ['a/+', 'a/$x', true, '[MQTT-4.7.2-1] $ only matters in the first level'],
  ['a//b', 'a//b', true, '[MQTT-4.7.3-4] empty levels are levels'],
  ['a/b', 'a//b', false, '[MQTT-4.7.3-4]'],
  ['a/+/b', 'a//b', true, '[MQTT-4.7.3-4]'],
  ['/', '/', true, '[MQTT-4.7.3-4]'],
  ['ACCOUNTS', 'Accounts', false, '[MQTT-4.7.3-4] case-sensitive'],
  ['Accounts payable', 'Accounts payable', true, '[MQTT-4.7.3-4] spaces'],
  ['caf\u00e9', 'cafe\u0301', false, '[MQTT-4.7.3-4] no normalisation'],
];

describe('TopicTrie', () => {
  for (const [filter, topic, expected, id] of cases) {
    test(`${id}: ${filter} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(topic)}`, () => {
      assert.equal(refMatch(filter, topic), expected, 'reference matcher');
      const trie = new TopicTrie<number>();
      trie.add(filter, 'c', 1);
      assert.deepEqual(matchedFilters(trie, topic), expected ? [filter] : []);
    });
  }

  test('all §4.7 filters in one trie', () => {
    const trie = new TopicTrie<number>();
    const filters = [...new Set(cases.map((c) => c[0]))];
    filters.forEach((f, i) => trie.add(f, 'c', i));
    for (const [, topic] of cases) {
      assert.deepEqual(matchedFilters(trie, topic), filters.filter((f) => refMatch(f, topic)).sort(), topic);
    }
  });

  test('add / replace / get / remove / size / filters / clear', () => {
    const trie = new TopicTrie<string>();
    assert.equal(trie.add('a/+', 'k1', 'v1'), true);
    assert.equal(trie.add('a/+', 'k2', 'v2'), true);
    assert.equal(trie.add('a/+', 'k1', 'v1b'), false, 'same key on same filter replaces');
    assert.equal(trie.add('a/#', 'k1', 'v3'), true, 'same key on another filter is another entry');
    assert.equal(trie.size, 3);
    assert.equal(trie.get('a/+', 'k1'), 'v1b');
    assert.equal(trie.get('a/b', 'k1'), undefined);
    assert.equal(trie.get('a/+', 'nope'), undefined);
    assert.deepEqual([...trie.filters()].sort(), ['a/#', 'a/+']);

    const seen: [string, string, string][] = [];
    trie.match('a/x', (v, k, f) => seen.push([v, k, f]));
    assert.deepEqual(seen.sort(), [['v1b', 'k1', 'a/+'], ['v2', 'k2', 'a/+'], ['v3', 'k1', 'a/#']].sort());

    assert.equal(trie.remove('a/+', 'k1'), true);
    assert.equal(trie.remove('a/+', 'k1'), false);
    assert.equal(trie.remove('a/b', 'k2'), false);
    assert.equal(trie.remove('x/y/z', 'k2'), false);
    assert.equal(trie.size, 2);
    trie.clear();
    assert.equal(trie.size, 0);
    assert.deepEqual([...trie.filters()], []);
    let n = 0;
    trie.match('a/x', () => n++);
    assert.equal(n, 0);
  });

  test('remove prunes empty nodes', () => {
    const trie = new TopicTrie<number>();
    trie.add('a/b/c', 'k', 1);
    trie.add('a/+/#', 'k', 2);
    trie.add('a/b', 'k', 3);
    const root = (trie as unknown as { root: { children?: Map<string, unknown>; plus?: unknown; hash?: unknown } }).root;
    trie.remove('a/b/c', 'k');
    trie.remove('a/+/#', 'k');
    assert.ok(root.children?.has('a'), 'a/b still held');
    trie.remove('a/b', 'k');
    assert.equal(root.children, undefined);
    assert.equal(root.plus, undefined);
    assert.equal(root.hash, undefined);
  });
});

describe('RetainedTrie', () => {
  for (const [filter, topic, expected, id] of cases) {
    test(`${id}: retained ${JSON.stringify(topic)} ${expected ? 'found' : 'not found'} by ${filter}`, () => {
      const trie = new RetainedTrie<number>();
      trie.set(topic, 1);
      assert.deepEqual(retainedMatches(trie, filter), expected ? [topic] : []);
    });
  }

  test('all §4.7 topics in one trie', () => {
    const trie = new RetainedTrie<number>();
    const topics = [...new Set(cases.map((c) => c[1]))];
    topics.forEach((t, i) => trie.set(t, i));
    for (const [filter] of cases) {
      assert.deepEqual(retainedMatches(trie, filter), topics.filter((t) => refMatch(filter, t)).sort(), filter);
    }
  });

  test('set / get / delete / size / values / entries / clear, with pruning', () => {
    const trie = new RetainedTrie<string>();
    assert.equal(trie.set('a/b', 'x'), true);
    assert.equal(trie.set('a/b', 'y'), false);
    assert.equal(trie.set('a', 'z'), true);
    assert.equal(trie.set('$SYS/a', 's'), true);
    assert.equal(trie.size, 3);
    assert.equal(trie.get('a/b'), 'y');
    assert.equal(trie.get('a/c'), undefined);
    assert.deepEqual([...trie.values()].sort(), ['s', 'y', 'z']);
    assert.deepEqual([...trie.entries()].sort(), [['$SYS/a', 's'], ['a', 'z'], ['a/b', 'y']]);
    assert.deepEqual(retainedMatches(trie as unknown as RetainedTrie<number>, 'a/#'), ['a', 'a/b']);
    assert.equal(trie.delete('a'), true);
    assert.equal(trie.delete('a'), false);
    assert.deepEqual(retainedMatches(trie as unknown as RetainedTrie<number>, '#'), ['a/b']);
    assert.equal(trie.delete('a/b'), true);
    assert.equal(trie.delete('$SYS/a'), true);
    assert.equal(trie.size, 0);
    const root = (trie as unknown as { root: { children?: unknown } }).root;
    assert.equal(root.children, undefined, 'pruned');
    trie.set('q', 'q');
    trie.clear();
    assert.equal(trie.size, 0);
    assert.equal(trie.get('q'), undefined);
    assert.deepEqual(retainedMatches(trie as unknown as RetainedTrie<number>, '#'), []);
  });
});

describe('property: tries agree with the reference matcher', () => {
  // A small alphabet so that collisions (and so matches) are frequent; '' gives empty levels.
  const nameLevel = fc.constantFrom('a', 'b', 'A', '', '$', '$SYS', 'a$');
  const topicArb = fc.array(nameLevel, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((t) => t !== '');
  const filterArb = fc
    .tuple(fc.array(fc.oneof(nameLevel, fc.constant('+')), { minLength: 0, maxLength: 4 }), fc.boolean())
    .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
    .filter((f) => f !== '');
  const keyArb = fc.constantFrom('k1', 'k2', 'k3');

  test('[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.2-1] TopicTrie.match == reference, with removals', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(filterArb, keyArb, fc.boolean()), { maxLength: 25 }),
        fc.array(topicArb, { minLength: 1, maxLength: 8 }),
        (subs, topics) => {
          const trie = new TopicTrie<number>();
          const model = new Map<string, [string, string]>(); // `${filter}\0${key}` -> [filter, key]
          subs.forEach(([f, k], i) => {
            assert.equal(trie.add(f, k, i), !model.has(`${f}\0${k}`));
            model.set(`${f}\0${k}`, [f, k]);
          });
          for (const [f, k, drop] of subs) {
            if (!drop) continue;
            assert.equal(trie.remove(f, k), model.delete(`${f}\0${k}`));
          }
          assert.equal(trie.size, model.size);
          assert.deepEqual([...trie.filters()].sort(), [...new Set([...model.values()].map(([f]) => f))].sort());
          for (const topic of topics) {
            const got: string[] = [];
            trie.match(topic, (_v, k, f) => got.push(`${f} ${k}`));
            const want = [...model.values()].filter(([f]) => refMatch(f, topic)).map(([f, k]) => `${f} ${k}`);
            assert.deepEqual(got.sort(), want.sort(), topic);
          }
          // Removing everything leaves an empty root.
          for (const [f, k] of model.values()) trie.remove(f, k);
          const root = (trie as unknown as { root: { children?: unknown; plus?: unknown; hash?: unknown } }).root;
          assert.equal(trie.size, 0);
          assert.ok(root.children === undefined && root.plus === undefined && root.hash === undefined, 'pruned');
        },
      ),
      { numRuns: 300 },
    );
  });

  test('TopicTrie.match == reference when matches (cached) and changes interleave', () => {
    const op = fc.oneof(
      fc.tuple(fc.constant('add' as const), filterArb, keyArb),
      fc.tuple(fc.constant('remove' as const), filterArb, keyArb),
      fc.tuple(fc.constant('match' as const), topicArb, fc.constant('')),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
        const trie = new TopicTrie<number>();
        const model = new Map<string, [string, string]>();
        ops.forEach(([kind, a, k], i) => {
          if (kind === 'add') {
            trie.add(a, k, i);
            model.set(`${a}\0${k}`, [a, k]);
          } else if (kind === 'remove') {
            assert.equal(trie.remove(a, k), model.delete(`${a}\0${k}`));
          } else {
            // Twice: the second answer comes from the cache.
            for (let round = 0; round < 2; round++) {
              const got: string[] = [];
              trie.match(a, (_v, key, f) => got.push(`${f} ${key}`));
              const want: string[] = [...model.values()].filter(([f]) => refMatch(f, a)).map(([f, key]) => `${f} ${key}`);
              assert.deepEqual(got.sort(), want.sort(), `${a} (round ${round})`);
            }
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  test('TopicTrie.matchList: distinct keys flag, meta kept with the cached result until a change (also a replaced value)', () => {
    const trie = new TopicTrie<string>();
    trie.add('a/+', 'k1', 'v1');
    trie.add('a/b', 'k2', 'v2');
    const first = trie.matchList('a/b');
    assert.equal(first.distinct, true);
    first.meta = 'derived';
    assert.equal(trie.matchList('a/b').meta, 'derived', 'cached with its meta');
    trie.add('a/#', 'k1', 'v3'); // k1 now matches twice
    const second = trie.matchList('a/b');
    assert.equal(second.meta, undefined, 'a change drops the cached result');
    assert.equal(second.distinct, false);
    second.meta = 'again';
    trie.add('a/b', 'k2', 'v2-new'); // same (filter, key): the value is replaced
    const third = trie.matchList('a/b');
    assert.equal(third.meta, undefined, 'a replaced value drops it too');
    assert.deepEqual(third.entries.map((e) => e.value).sort(), ['v1', 'v2-new', 'v3']);
  });

  test('TopicTrie match cache: bounded, and bypassed when topics do not repeat', () => {
    const trie = new TopicTrie<number>();
    trie.add('d/+/t', 'k', 1);
    let seen = 0;
    for (let i = 0; i < 40_000; i++) trie.match(`d/${i}/t`, () => seen++);
    assert.equal(seen, 40_000, 'every distinct topic matched');
    assert.ok(trie.cachedTopics <= 16_384, `bounded (${trie.cachedTopics})`);
    assert.equal(trie.cachedTopics, 0, 'mostly misses: emptied and bypassed');
    // A repeating topic set is served from the cache after the bypass ends.
    const fresh = new TopicTrie<number>();
    fresh.add('d/+/t', 'k', 1);
    for (let r = 0; r < 3; r++) for (let i = 0; i < 100; i++) fresh.match(`d/${i}/t`, () => undefined);
    assert.equal(fresh.cachedTopics, 100);
    fresh.add('d/#', 'k2', 2);
    assert.equal(fresh.cachedTopics, 0, 'a change empties the cache');
    const got: string[] = [];
    fresh.match('d/5/t', (_v, k) => got.push(k));
    assert.deepEqual(got.sort(), ['k', 'k2']);
  });

  test('[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.2-1] RetainedTrie.matchFilter == reference, with deletes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(topicArb, fc.boolean()), { maxLength: 25 }),
        fc.array(filterArb, { minLength: 1, maxLength: 8 }),
        (stored, filters) => {
          const trie = new RetainedTrie<number>();
          const model = new Map<string, number>();
          stored.forEach(([t], i) => {
            assert.equal(trie.set(t, i), !model.has(t));
            model.set(t, i);
          });
          for (const [t, drop] of stored) if (drop) assert.equal(trie.delete(t), model.delete(t));
          assert.equal(trie.size, model.size);
          for (const filter of filters) {
            const got: string[] = [];
            trie.matchFilter(filter, (t, v) => {
              assert.equal(v, model.get(t));
              got.push(t);
            });
            assert.deepEqual(got.sort(), [...model.keys()].filter((t) => refMatch(filter, t)).sort(), filter);
          }
          for (const t of model.keys()) trie.delete(t);
          assert.equal((trie as unknown as { root: { children?: unknown } }).root.children, undefined, 'pruned');
        },
      ),
      { numRuns: 300 },
    );
  });
});
