/**
 * The store contract: one suite every `Store` backend must pass (memory, embedded, Redis). It
 * talks to the store through the interface only.
 *
 * `make` returns a store that is NOT yet open; the suite opens it, and closes it before calling
 * `cleanup`. A durable backend also returns `reopen`: the suite closes the current store first,
 * then `reopen` returns a new, unopened store over the same data, which the suite opens. Without
 * `reopen` (and `durable: true`) the durability tests are not registered.
 *
 * Semantics pinned here beyond the comments in `types.ts`:
 * - Epochs are never reused for a client id, not even after the session was deleted.
 * - Writes naming an absent session (with any epoch) are refused with `StaleEpochError`
 *   (`current` undefined), except `deleteSession`, which is a no-op for an absent session.
 * - Writes naming an unknown seq or packet id (already completed, dropped...) are no-ops.
 * - Optional fields set to `undefined` come back absent.
 */
import { Buffer } from 'node:buffer';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test, type TestContext } from 'node:test';
import { StaleEpochError, type NewDelivery, type PublishCommit, type Store } from '../types.js';
import {
  assertStale,
  binaryPayload,
  dump,
  message,
  noise,
  populate,
  record,
  richMessage,
  richRecord,
  snapshotOf,
  sub,
} from './fixtures.js';

export interface ContractSubject {
  store: Store;
  reopen?: () => Promise<Store>;
  cleanup: () => Promise<void>;
}

export function storeContract(name: string, make: () => Promise<ContractSubject>, options: { durable: boolean } = { durable: false }): void {
  describe(`store contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: Store;

    beforeEach(async () => {
      subject = await make();
      store = subject.store;
      await store.open();
    });

    afterEach(async () => {
      await store.close();
      await subject.cleanup();
    });

    /** Closes the store and opens a new one over the same data (durable backends only). */
    async function reopen(): Promise<Store> {
      assert.ok(subject.reopen, 'reopen is not supported');
      await store.close();
      store = await subject.reopen();
      await store.open();
      return store;
    }

    describe('takeSession', () => {
      test('creates a session with a positive epoch and empty state', async () => {
        const r = await store.takeSession(record('c1'), false);
        assert.equal(r.existed, false);
        assert.equal(r.previous, undefined);
        assert.ok(Number.isInteger(r.epoch) && r.epoch > 0);
        assert.deepEqual(await store.getSession('c1'), {
          record: record('c1'),
          epoch: r.epoch,
          subscriptions: [],
          deliveries: [],
          incomingQos2: [],
        });
        assert.equal(await store.getSession('nobody'), undefined);
      });

      test('cleanStart on an absent session also creates it', async () => {
        const r = await store.takeSession(record('c1'), true);
        assert.equal(r.existed, false);
        assert.equal(r.previous, undefined);
        assert.equal((await store.getSession('c1'))?.epoch, r.epoch);
      });

      test('takeover without cleanStart bumps the epoch, returns the previous state and keeps it', async () => {
        const first = await store.takeSession(record('c1', { expiryInterval: 10 }), false);
        await store.addSubscriptions('c1', first.epoch, [sub('a/+'), sub('b/#', 2)]);
        const m = message('a/x');
        const { seqs } = await store.commitPublish({ message: m, deliveries: [{ clientId: 'c1', qos: 1, retain: false }] });
        await store.markSent('c1', first.epoch, seqs[0]!, 5);
        await store.addIncomingQos2('c1', first.epoch, 9);
        const before = await snapshotOf(store, 'c1');

        const second = await store.takeSession(record('c1', { nodeId: 'node-b', expiryInterval: 20 }), false);
        assert.ok(second.epoch > first.epoch, 'epoch must increase');
        assert.equal(second.existed, true);
        assert.ok(second.previous);
        assert.deepEqual(
          { ...second.previous, subscriptions: [...second.previous.subscriptions].sort((x, y) => x.filter.localeCompare(y.filter)) },
          before,
        );
        assert.equal(second.previous.epoch, first.epoch);

        const now = await snapshotOf(store, 'c1');
        assert.deepEqual(now, { ...before, epoch: second.epoch, record: record('c1', { nodeId: 'node-b', expiryInterval: 20 }) });
        assert.deepEqual(now?.deliveries[0], {
          seq: seqs[0],
          message: m,
          qos: 1,
          retain: false,
          phase: 'sent',
          packetId: 5,
        });
      });

      test('takeover with cleanStart discards subscriptions, deliveries and inbound QoS 2 ids', async () => {
        const first = await store.takeSession(record('c1'), false);
        await store.addSubscriptions('c1', first.epoch, [sub('a/+')]);
        await store.commitPublish({ message: message('a/x'), deliveries: [{ clientId: 'c1', qos: 1, retain: false }] });
        await store.addIncomingQos2('c1', first.epoch, 3);

        const second = await store.takeSession(record('c1', { username: 'u' }), true);
        assert.equal(second.existed, true);
        assert.equal(second.previous, undefined);
        assert.ok(second.epoch > first.epoch);
        assert.deepEqual(await store.getSession('c1'), {
          record: record('c1', { username: 'u' }),
          epoch: second.epoch,
          subscriptions: [],
          deliveries: [],
          incomingQos2: [],
        });
        assert.deepEqual(await store.listSubscriptions(), []);
      });

      test('every takeover gives a new, larger epoch', async () => {
        let last = 0;
        for (let i = 0; i < 5; i++) {
          const r = await store.takeSession(record('c1'), i % 2 === 0);
          assert.ok(r.epoch > last, `epoch ${r.epoch} after ${last}`);
          last = r.epoch;
        }
      });

      test('epochs are never reused after delete: the old owner stays fenced', async () => {
        const first = await store.takeSession(record('c1'), false);
        await store.deleteSession('c1', first.epoch);
        const again = await store.takeSession(record('c1'), false);
        assert.equal(again.existed, false);
        assert.notEqual(again.epoch, first.epoch);
        await assertStale(store.addSubscriptions('c1', first.epoch, [sub('x')]), 'c1', first.epoch, again.epoch);
        assert.deepEqual((await store.getSession('c1'))?.subscriptions, []);
      });

      test('sessions of different clients have independent owners', async () => {
        const a = await store.takeSession(record('a'), false);
        const b = await store.takeSession(record('b'), false);
        await store.addSubscriptions('a', a.epoch, [sub('x')]);
        await store.addSubscriptions('b', b.epoch, [sub('y')]);
        await store.takeSession(record('b'), false);
        await store.addSubscriptions('a', a.epoch, [sub('z')]);
        assert.deepEqual((await snapshotOf(store, 'a'))?.subscriptions, [sub('x'), sub('z')]);
      });

      test('the record is stored as given, including will and binary payloads', async () => {
        await store.takeSession(richRecord('w'), false);
        assert.deepEqual((await store.getSession('w'))?.record, richRecord('w'));
      });
    });

    describe('epoch fencing', () => {
      /** A session with something of everything, taken over once: `old` is stale, `epoch` current. */
      async function fencedSession(): Promise<{ old: number; epoch: number; seqs: number[] }> {
        const first = await store.takeSession(record('c1'), false);
        await store.addSubscriptions('c1', first.epoch, [sub('a/#'), sub('b/#')]);
        const { seqs } = await store.commitPublish({
          message: message('a/1'),
          deliveries: [{ clientId: 'c1', qos: 2, retain: false }, { clientId: 'c1', qos: 1, retain: false }],
        });
        const third = await store.commitPublish({ message: message('a/2'), deliveries: [{ clientId: 'c1', qos: 1, retain: false }] });
        seqs.push(third.seqs[0]!);
        await store.markSent('c1', first.epoch, seqs[0]!, 1);
        await store.markSent('c1', first.epoch, seqs[1]!, 2);
        await store.addIncomingQos2('c1', first.epoch, 7);
        await store.takeSession(record('other'), false);
        await store.commitPublish({ message: message('keep', 'r'), deliveries: [], retain: 'set' });
        const second = await store.takeSession(record('c1', { nodeId: 'node-b' }), false);
        return { old: first.epoch, epoch: second.epoch, seqs };
      }

      const writes: Array<[string, (s: Store, epoch: number, seqs: number[]) => Promise<unknown>]> = [
        ['updateSession', (s, e) => s.updateSession(record('c1', { expiryInterval: 1 }), e)],
        ['deleteSession', (s, e) => s.deleteSession('c1', e)],
        ['addSubscriptions', (s, e) => s.addSubscriptions('c1', e, [sub('c/#'), sub('a/#', 0)])],
        ['removeSubscriptions', (s, e) => s.removeSubscriptions('c1', e, ['a/#'])],
        ['markSent', (s, e, seqs) => s.markSent('c1', e, seqs[2]!, 9)],
        ['markReleased', (s, e) => s.markReleased('c1', e, 1)],
        ['completeDelivery', (s, e) => s.completeDelivery('c1', e, 2)],
        ['dropDeliveries', (s, e, seqs) => s.dropDeliveries('c1', e, seqs)],
        ['updateDeliveries', (s, e, seqs) => s.updateDeliveries('c1', e, [seqs[2]!, 9, 0, 2])],
        ['addIncomingQos2', (s, e) => s.addIncomingQos2('c1', e, 8)],
        ['removeIncomingQos2', (s, e) => s.removeIncomingQos2('c1', e, 7)],
        [
          'commitPublish with incomingQos2',
          (s, e) =>
            s.commitPublish({
              message: message('keep', 'new'),
              deliveries: [{ clientId: 'c1', qos: 1, retain: false }, { clientId: 'other', qos: 1, retain: false }],
              retain: 'set',
              incomingQos2: { clientId: 'c1', epoch: e, packetId: 8 },
            }),
        ],
      ];

      for (const [op, write] of writes) {
        test(`${op} with an old epoch is refused and changes nothing`, async () => {
          const { old, epoch, seqs } = await fencedSession();
          const before = await dump(store);
          await assertStale(write(store, old, seqs), 'c1', old, epoch);
          assert.deepEqual(await dump(store), before);
        });

        test(`${op} with a future epoch is refused and changes nothing`, async () => {
          const { epoch, seqs } = await fencedSession();
          const before = await dump(store);
          await assertStale(write(store, epoch + 1000, seqs), 'c1', epoch + 1000, epoch);
          assert.deepEqual(await dump(store), before);
        });

        test(`${op} with the current epoch succeeds`, async () => {
          const { epoch, seqs } = await fencedSession();
          await write(store, epoch, seqs);
        });
      }

      test('writes to an absent session are refused with current undefined', async () => {
        const c = 'ghost';
        await assertStale(store.updateSession(record(c), 1), c, 1, undefined);
        await assertStale(store.addSubscriptions(c, 1, [sub('x')]), c, 1, undefined);
        await assertStale(store.removeSubscriptions(c, 1, ['x']), c, 1, undefined);
        await assertStale(store.markSent(c, 1, 1, 1), c, 1, undefined);
        await assertStale(store.markReleased(c, 1, 1), c, 1, undefined);
        await assertStale(store.completeDelivery(c, 1, 1), c, 1, undefined);
        await assertStale(store.dropDeliveries(c, 1, [1]), c, 1, undefined);
        await assertStale(store.updateDeliveries(c, 1, [1, 1]), c, 1, undefined);
        await assertStale(store.addIncomingQos2(c, 1, 1), c, 1, undefined);
        await assertStale(store.removeIncomingQos2(c, 1, 1), c, 1, undefined);
        await assertStale(
          store.commitPublish({ message: message('t', 'x', { retain: true }), deliveries: [], retain: 'set', incomingQos2: { clientId: c, epoch: 1, packetId: 1 } }),
          c,
          1,
          undefined,
        );
        assert.deepEqual(await dump(store), { sessions: [], snapshots: [], subscriptions: [], retained: [] });
      });

      test('updateSession with the current epoch replaces the record and nothing else', async () => {
        const { epoch } = await fencedSession();
        const before = await snapshotOf(store, 'c1');
        const next = record('c1', { nodeId: undefined, disconnectedAt: 1_700_000_999_000, expiryInterval: 0, will: richRecord('c1').will! });
        await store.updateSession(next, epoch);
        const after = await snapshotOf(store, 'c1');
        const { nodeId: _dropped, ...expected } = next;
        assert.deepEqual(after, { ...before, record: expected });
        assert.deepEqual((await store.listSessions()).find((s) => s.record.clientId === 'c1'), { record: expected, epoch });
      });

      test('StaleEpochError is an Error with a readable message', async () => {
        const { old } = await fencedSession();
        const err = await store.addIncomingQos2('c1', old, 1).then(
          () => assert.fail('expected a rejection'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof Error && err instanceof StaleEpochError);
        assert.equal(err.name, 'StaleEpochError');
        assert.match(err.message, /c1/);
      });
    });

    describe('subscriptions', () => {
      test('add, replace by filter, remove and list', async () => {
        const { epoch } = await store.takeSession(record('c1'), false);
        await store.addSubscriptions('c1', epoch, [sub('a/+', 0), sub('$share/g/b/#', 1, { subscriptionId: 3 })]);
        await store.addSubscriptions('c1', epoch, [sub('a/+', 2, { noLocal: true, retainAsPublished: true, retainHandling: 1, subscriptionId: 268435455 })]);
        const snap = await snapshotOf(store, 'c1');
        assert.deepEqual(snap?.subscriptions, [
          sub('$share/g/b/#', 1, { subscriptionId: 3 }),
          sub('a/+', 2, { noLocal: true, retainAsPublished: true, retainHandling: 1, subscriptionId: 268435455 }),
        ]);
        await store.removeSubscriptions('c1', epoch, ['a/+', 'never/subscribed']);
        assert.deepEqual((await store.getSession('c1'))?.subscriptions, [sub('$share/g/b/#', 1, { subscriptionId: 3 })]);
        await store.removeSubscriptions('c1', epoch, []);
        await store.addSubscriptions('c1', epoch, []);
        assert.equal((await store.getSession('c1'))?.subscriptions.length, 1);
      });

      test('replacing a subscription without a subscription id removes the old id', async () => {
        const { epoch } = await store.takeSession(record('c1'), false);
        await store.addSubscriptions('c1', epoch, [sub('a', 1, { subscriptionId: 5 })]);
        await store.addSubscriptions('c1', epoch, [sub('a', 1)]);
        assert.deepEqual((await store.getSession('c1'))?.subscriptions, [sub('a', 1)]);
      });

      test('listSubscriptions covers every session and forgets deleted ones', async () => {
        const a = await store.takeSession(record('a'), false);
        const b = await store.takeSession(record('b'), false);
        await store.addSubscriptions('a', a.epoch, [sub('x/#'), sub('y')]);
        await store.addSubscriptions('b', b.epoch, [sub('x/#', 2)]);
        const list = (await dump(store)).subscriptions;
        assert.deepEqual(list, [
          { clientId: 'a', subscription: sub('x/#') },
          { clientId: 'a', subscription: sub('y') },
          { clientId: 'b', subscription: sub('x/#', 2) },
        ]);
        await store.deleteSession('a');
        assert.deepEqual(await store.listSubscriptions(), [{ clientId: 'b', subscription: sub('x/#', 2) }]);
      });
    });

    describe('commitPublish', () => {
      test('assigns increasing seqs per session, in delivery order, and queues entries in seq order', async () => {
        await store.takeSession(record('a'), false);
        await store.takeSession(record('b'), false);
        const all: number[] = [];
        const messages = [];
        for (let i = 0; i < 5; i++) {
          const m = message(`t/${i}`, `p${i}`);
          messages.push(m);
          const { seqs } = await store.commitPublish({
            message: m,
            deliveries: [{ clientId: 'a', qos: 1, retain: false }, { clientId: 'b', qos: 0, retain: true, subscriptionIds: [i] }],
          });
          assert.equal(seqs.length, 2);
          all.push(seqs[0]!);
        }
        for (let i = 1; i < all.length; i++) assert.ok(all[i]! > all[i - 1]!, `seqs ${all.join(',')}`);
        const a = await store.getSession('a');
        assert.deepEqual(a?.deliveries, messages.map((m, i) => ({ seq: all[i], message: m, qos: 1, retain: false, phase: 'queued' })));
        const b = await store.getSession('b');
        assert.deepEqual(b?.deliveries.map((d) => [d.message.id, d.qos, d.retain, d.subscriptionIds, d.phase, d.packetId]), messages.map((m, i) => [m.id, 0, true, [i], 'queued', undefined]));
        const bSeqs = b!.deliveries.map((d) => d.seq);
        assert.deepEqual(bSeqs, [...bSeqs].sort((x, y) => x - y));
      });

      test('several deliveries to one session in one commit get consecutive increasing seqs', async () => {
        await store.takeSession(record('a'), false);
        const { seqs } = await store.commitPublish({
          message: message('t'),
          deliveries: [
            { clientId: 'a', qos: 1, retain: false, subscriptionIds: [1] },
            { clientId: 'a', qos: 2, retain: false, subscriptionIds: [2] },
          ],
        });
        assert.ok(seqs[1]! > seqs[0]!);
        assert.deepEqual((await store.getSession('a'))?.deliveries.map((d) => [d.seq, d.subscriptionIds]), [[seqs[0], [1]], [seqs[1], [2]]]);
      });

      test('concurrent commits get seqs in call order', async () => {
        await store.takeSession(record('a'), false);
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.commitPublish({ message: message('t', `m${i}`), deliveries: [{ clientId: 'a', qos: 1, retain: false }] })),
        );
        const seqs = results.map((r) => r.seqs[0]!);
        for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!);
        assert.deepEqual((await store.getSession('a'))?.deliveries.map((d) => d.message.payload.toString()), Array.from({ length: 50 }, (_, i) => `m${i}`));
      });

      test('seqs keep increasing after entries are removed and across takeovers', async () => {
        const first = await store.takeSession(record('a'), false);
        const c1 = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'a', qos: 1, retain: false }] });
        await store.markSent('a', first.epoch, c1.seqs[0]!, 1);
        await store.completeDelivery('a', first.epoch, 1);
        const c2 = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'a', qos: 1, retain: false }] });
        assert.ok(c2.seqs[0]! > c1.seqs[0]!);
        const second = await store.takeSession(record('a'), false);
        await store.dropDeliveries('a', second.epoch, [c2.seqs[0]!]);
        const c3 = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'a', qos: 1, retain: false }] });
        assert.ok(c3.seqs[0]! > c2.seqs[0]!);
      });

      test('one message shared by many sessions is delivered to each', async () => {
        const clients = ['s1', 's2', 's3', 's4'];
        for (const c of clients) await store.takeSession(record(c), false);
        const m = richMessage('shared/topic', noise(10_000, 3));
        const { seqs } = await store.commitPublish({ message: m, deliveries: clients.map((clientId) => ({ clientId, qos: 2 as const, retain: false })) });
        assert.equal(seqs.length, 4);
        for (const c of clients) {
          const snap = await store.getSession(c);
          assert.equal(snap?.deliveries.length, 1);
          assert.deepEqual(snap?.deliveries[0]?.message, m);
        }
        // Changing one session's entry must not affect the others.
        const e1 = await store.takeSession(record('s1'), false);
        await store.markSent('s1', e1.epoch, seqs[0]!, 1);
        await store.completeDelivery('s1', e1.epoch, 1);
        assert.deepEqual((await store.getSession('s1'))?.deliveries, []);
        assert.deepEqual((await store.getSession('s2'))?.deliveries[0]?.message, m);
      });

      test('maxQueued refuses deliveries to a session holding that many entries (seq -2), in flight included', async () => {
        const { epoch } = await store.takeSession(record('mq'), false);
        await store.takeSession(record('mq-other'), false);
        const one = [{ clientId: 'mq', qos: 1 as const, retain: false }];
        const r1 = await store.commitPublish({ message: message('t'), deliveries: one, maxQueued: 2 });
        assert.ok(r1.seqs[0]! >= 0);
        await store.markSent('mq', epoch, r1.seqs[0]!, 7);
        // One commit adding two: the first fits (2nd entry), the second does not.
        const both = await store.commitPublish({
          message: message('t'),
          deliveries: [...one, { clientId: 'mq-other', qos: 1, retain: false }, ...one],
          maxQueued: 2,
        });
        assert.ok(both.seqs[0]! >= 0);
        assert.ok(both.seqs[1]! >= 0, 'other sessions are not affected');
        assert.equal(both.seqs[2], -2);
        assert.equal((await store.getSession('mq'))?.deliveries.length, 2);
        // Completing the in-flight entry makes room again; no bound without maxQueued.
        await store.completeDelivery('mq', epoch, 7);
        assert.ok((await store.commitPublish({ message: message('t'), deliveries: one, maxQueued: 2 })).seqs[0]! >= 0);
        assert.ok((await store.commitPublish({ message: message('t'), deliveries: one })).seqs[0]! >= 0);
        assert.equal((await store.getSession('mq'))?.deliveries.length, 3);
      });

      test('the commit reports the node serving each session at that moment (owners)', async () => {
        const a = await store.takeSession(record('own-a', { nodeId: 'n1' }), false);
        await store.takeSession(record('own-b', { nodeId: 'n2', disconnectedAt: 1000 }), false);
        const deliveries = [
          { clientId: 'own-a', qos: 1 as const, retain: false },
          { clientId: 'own-b', qos: 1 as const, retain: false },
          { clientId: 'own-ghost', qos: 1 as const, retain: false },
        ];
        const first = await store.commitPublish({ message: message('t'), deliveries });
        assert.deepEqual(first.owners, ['n1', undefined, undefined]);
        // Disconnect on n1, then a takeover by n3: later commits name the new owner.
        await store.updateSession(record('own-a', { nodeId: 'n1', disconnectedAt: 2000 }), a.epoch);
        assert.deepEqual((await store.commitPublish({ message: message('t'), deliveries })).owners, [undefined, undefined, undefined]);
        await store.takeSession(record('own-a', { nodeId: 'n3' }), false);
        assert.deepEqual((await store.commitPublish({ message: message('t'), deliveries })).owners, ['n3', undefined, undefined]);
      });

      test('deliveries to unknown sessions get seq -1 and the others still land', async () => {
        await store.takeSession(record('a'), false);
        const m = message('t');
        const { seqs } = await store.commitPublish({
          message: m,
          deliveries: [{ clientId: 'ghost', qos: 1, retain: false }, { clientId: 'a', qos: 1, retain: false }, { clientId: 'ghost2', qos: 2, retain: false }],
        });
        assert.equal(seqs[0], -1);
        assert.ok(seqs[1]! >= 0);
        assert.equal(seqs[2], -1);
        assert.equal(await store.getSession('ghost'), undefined);
        assert.deepEqual((await store.getSession('a'))?.deliveries.map((d) => d.message), [m]);
        const none = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'ghost', qos: 1, retain: false }] });
        assert.deepEqual(none.seqs, [-1]);
      });

      test('a commit without deliveries resolves with no seqs', async () => {
        assert.deepEqual(await store.commitPublish({ message: message('t'), deliveries: [] }), { seqs: [], owners: [] });
        assert.deepEqual(await store.listRetained(), []);
      });

      test('sets, replaces and deletes retained messages', async () => {
        const m1 = message('r/1', 'one', { retain: true });
        const m2 = message('r/2', 'two', { retain: true, qos: 2 });
        await store.commitPublish({ message: m1, deliveries: [], retain: 'set' });
        await store.commitPublish({ message: m2, deliveries: [], retain: 'set' });
        assert.deepEqual((await dump(store)).retained, [m1, m2]);
        const m1b = richMessage('r/1');
        await store.commitPublish({ message: m1b, deliveries: [], retain: 'set' });
        assert.deepEqual((await dump(store)).retained, [m1b, m2]);
        await store.commitPublish({ message: message('r/2', '', { retain: true }), deliveries: [], retain: 'delete' });
        assert.deepEqual(await store.listRetained(), [m1b]);
        await store.commitPublish({ message: message('r/none', '', { retain: true }), deliveries: [], retain: 'delete' });
        assert.deepEqual(await store.listRetained(), [m1b]);
      });

      test('a retained set together with deliveries lands both', async () => {
        await store.takeSession(record('a'), false);
        const m = message('r/1', 'x', { retain: true });
        await store.commitPublish({ message: m, deliveries: [{ clientId: 'a', qos: 1, retain: true }], retain: 'set' });
        assert.deepEqual(await store.listRetained(), [m]);
        assert.deepEqual((await store.getSession('a'))?.deliveries.map((d) => [d.message, d.retain]), [[m, true]]);
        // A delete (empty retained payload) still reaches current subscribers.
        const del = message('r/1', '', { retain: true });
        await store.commitPublish({ message: del, deliveries: [{ clientId: 'a', qos: 1, retain: false }], retain: 'delete' });
        assert.deepEqual(await store.listRetained(), []);
        assert.deepEqual((await store.getSession('a'))?.deliveries.map((d) => d.message), [m, del]);
      });

      test('records the inbound QoS 2 packet id together with the message', async () => {
        const pub = await store.takeSession(record('pub'), false);
        await store.takeSession(record('s'), false);
        const m = message('t', 'x', { qos: 2, retain: true });
        const { seqs } = await store.commitPublish({
          message: m,
          deliveries: [{ clientId: 's', qos: 2, retain: false }],
          retain: 'set',
          incomingQos2: { clientId: 'pub', epoch: pub.epoch, packetId: 42 },
        });
        assert.equal(seqs.length, 1);
        assert.deepEqual((await store.getSession('pub'))?.incomingQos2, [42]);
        assert.deepEqual((await store.getSession('s'))?.deliveries.map((d) => d.message), [m]);
        assert.deepEqual(await store.listRetained(), [m]);
        // Only the inbound id, no deliveries.
        await store.commitPublish({ message: message('t2', 'y', { qos: 2 }), deliveries: [], incomingQos2: { clientId: 'pub', epoch: pub.epoch, packetId: 43 } });
        assert.deepEqual((await snapshotOf(store, 'pub'))?.incomingQos2, [42, 43]);
      });

      test('with a stale epoch in incomingQos2 nothing of the commit lands', async () => {
        const old = await store.takeSession(record('pub'), false);
        await store.takeSession(record('s'), false);
        const cur = await store.takeSession(record('pub'), false);
        const kept = message('t', 'kept', { retain: true });
        await store.commitPublish({ message: kept, deliveries: [], retain: 'set' });
        const before = await dump(store);
        await assertStale(
          store.commitPublish({
            message: message('t', 'new', { qos: 2, retain: true }),
            deliveries: [{ clientId: 's', qos: 2, retain: false }, { clientId: 'pub', qos: 1, retain: false }],
            retain: 'set',
            incomingQos2: { clientId: 'pub', epoch: old.epoch, packetId: 1 },
          }),
          'pub',
          old.epoch,
          cur.epoch,
        );
        await assertStale(
          store.commitPublish({ message: message('t', '', { retain: true }), deliveries: [], retain: 'delete', incomingQos2: { clientId: 'pub', epoch: old.epoch, packetId: 2 } }),
          'pub',
          old.epoch,
          cur.epoch,
        );
        assert.deepEqual(await dump(store), before);
        // The seq counter did not move either: the next commit gets the next seq.
        const { seqs } = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 's', qos: 1, retain: false }] });
        assert.equal((await store.getSession('s'))?.deliveries.length, 1);
        assert.ok(seqs[0]! >= 0);
      });
    });

    describe('delivery phases', () => {
      async function queue(n: number): Promise<{ epoch: number; seqs: number[] }> {
        const { epoch } = await store.takeSession(record('c'), false);
        const seqs: number[] = [];
        for (let i = 0; i < n; i++) {
          const r = await store.commitPublish({ message: message('t', `m${i}`, { qos: 2 }), deliveries: [{ clientId: 'c', qos: 2, retain: false }] });
          seqs.push(r.seqs[0]!);
        }
        return { epoch, seqs };
      }
      const phases = async (): Promise<Array<[number, string, number | undefined]>> =>
        ((await store.getSession('c'))?.deliveries ?? []).map((d) => [d.seq, d.phase, d.packetId]);

      test('queued -> sent -> released -> completed (QoS 2)', async () => {
        const { epoch, seqs } = await queue(2);
        assert.deepEqual(await phases(), [[seqs[0], 'queued', undefined], [seqs[1], 'queued', undefined]]);
        await store.markSent('c', epoch, seqs[0]!, 100);
        assert.deepEqual(await phases(), [[seqs[0], 'sent', 100], [seqs[1], 'queued', undefined]]);
        await store.markReleased('c', epoch, 100);
        assert.deepEqual(await phases(), [[seqs[0], 'released', 100], [seqs[1], 'queued', undefined]]);
        await store.completeDelivery('c', epoch, 100);
        assert.deepEqual(await phases(), [[seqs[1], 'queued', undefined]]);
      });

      test('sent -> completed (QoS 1) and re-send with a new packet id', async () => {
        const { epoch, seqs } = await queue(2);
        await store.markSent('c', epoch, seqs[0]!, 1);
        await store.markSent('c', epoch, seqs[1]!, 2);
        await store.markSent('c', epoch, seqs[0]!, 3);
        assert.deepEqual(await phases(), [[seqs[0], 'sent', 3], [seqs[1], 'sent', 2]]);
        await store.completeDelivery('c', epoch, 1); // old id: no longer in use
        assert.equal((await phases()).length, 2);
        await store.completeDelivery('c', epoch, 2);
        assert.deepEqual(await phases(), [[seqs[0], 'sent', 3]]);
        await store.completeDelivery('c', epoch, 3);
        assert.deepEqual(await phases(), []);
      });

      test('a packet id can be reused once its delivery is complete', async () => {
        const { epoch, seqs } = await queue(2);
        await store.markSent('c', epoch, seqs[0]!, 1);
        await store.completeDelivery('c', epoch, 1);
        await store.markSent('c', epoch, seqs[1]!, 1);
        await store.markReleased('c', epoch, 1);
        assert.deepEqual(await phases(), [[seqs[1], 'released', 1]]);
      });

      test('dropDeliveries removes entries by seq and ignores unknown seqs', async () => {
        const { epoch, seqs } = await queue(4);
        await store.markSent('c', epoch, seqs[3]!, 9);
        await store.dropDeliveries('c', epoch, [seqs[1]!, seqs[3]!, 999_999]);
        assert.deepEqual(await phases(), [[seqs[0], 'queued', undefined], [seqs[2], 'queued', undefined]]);
        await store.completeDelivery('c', epoch, 9); // dropped with its packet id
        assert.equal((await phases()).length, 2);
        await store.dropDeliveries('c', epoch, []);
        assert.equal((await phases()).length, 2);
      });

      test('unknown seqs and packet ids are no-ops', async () => {
        const { epoch } = await queue(1);
        const before = await dump(store);
        await store.markSent('c', epoch, 999_999, 1);
        await store.markReleased('c', epoch, 77);
        await store.completeDelivery('c', epoch, 77);
        assert.deepEqual(await dump(store), before);
      });

      test('updateDeliveries applies its markSent / completeDelivery pairs in order, as the single calls would', async () => {
        // Two sessions with the same queue: one gets the single calls, the other one batch.
        const single = await queue(4);
        const other = await store.takeSession(record('d'), false);
        const seqsD: number[] = [];
        for (let i = 0; i < 4; i++) seqsD.push((await store.commitPublish({ message: message(`t/${i}`), deliveries: [{ clientId: 'd', qos: 1, retain: false }] })).seqs[0]!);
        // seq index, packet id; index -1 = complete. Packet id 1 is completed and reused, seq 1
        // re-sent under a new id, an unknown id completed, an unknown seq sent.
        const script: Array<[number, number]> = [[0, 1], [1, 2], [-1, 1], [2, 1], [1, 5], [-1, 77], [-1, 2], [3, 6], [-1, 6], [99, 8]];
        const seqOf = (seqs: number[], i: number) => (i === 99 ? 999_999 : seqs[i]!);
        for (const [i, id] of script) {
          if (i < 0) await store.completeDelivery('c', single.epoch, id);
          else await store.markSent('c', single.epoch, seqOf(single.seqs, i), id);
        }
        await store.updateDeliveries('d', other.epoch, script.flatMap(([i, id]) => [i < 0 ? 0 : seqOf(seqsD, i), id]));
        const shape = (deliveries: Array<{ seq: number; phase: string; packetId?: number }>, seqs: number[]) =>
          deliveries.map((d) => [seqs.indexOf(d.seq), d.phase, d.packetId]);
        const expected = [[1, 'sent', 5], [2, 'sent', 1]];
        assert.deepEqual(shape((await store.getSession('c'))!.deliveries, single.seqs), expected);
        assert.deepEqual(shape((await store.getSession('d'))!.deliveries, seqsD), expected);
        // An empty batch changes nothing.
        const before = await dump(store);
        await store.updateDeliveries('d', other.epoch, []);
        assert.deepEqual(await dump(store), before);
      });

      test('phases are per session', async () => {
        const { epoch, seqs } = await queue(1);
        const other = await store.takeSession(record('d'), false);
        const r = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'd', qos: 1, retain: false }] });
        await store.markSent('c', epoch, seqs[0]!, 1);
        await store.markSent('d', other.epoch, r.seqs[0]!, 1);
        await store.completeDelivery('d', other.epoch, 1);
        assert.deepEqual(await phases(), [[seqs[0], 'sent', 1]]);
        assert.deepEqual((await store.getSession('d'))?.deliveries, []);
      });
    });

    describe('inbound QoS 2', () => {
      test('add and remove packet ids', async () => {
        const { epoch } = await store.takeSession(record('c'), false);
        await store.addIncomingQos2('c', epoch, 1);
        await store.addIncomingQos2('c', epoch, 65535);
        await store.addIncomingQos2('c', epoch, 1);
        assert.deepEqual((await snapshotOf(store, 'c'))?.incomingQos2, [1, 65535]);
        await store.removeIncomingQos2('c', epoch, 1);
        await store.removeIncomingQos2('c', epoch, 2);
        assert.deepEqual((await store.getSession('c'))?.incomingQos2, [65535]);
        await store.removeIncomingQos2('c', epoch, 65535);
        assert.deepEqual((await store.getSession('c'))?.incomingQos2, []);
      });
    });

    describe('listing and deleting', () => {
      test('listSessions returns every session with its epoch', async () => {
        const a = await store.takeSession(record('a'), false);
        const b = await store.takeSession(richRecord('b'), true);
        const a2 = await store.takeSession(record('a', { nodeId: 'node-c' }), false);
        assert.deepEqual((await dump(store)).sessions, [
          { record: record('a', { nodeId: 'node-c' }), epoch: a2.epoch },
          { record: richRecord('b'), epoch: b.epoch },
        ]);
        assert.ok(a2.epoch > a.epoch);
      });

      test('deleteSession removes the session and everything it owns, not retained messages', async () => {
        const { epoch } = await store.takeSession(record('c'), false);
        await store.takeSession(record('other'), false);
        await store.addSubscriptions('c', epoch, [sub('a/#')]);
        const r = message('a/1', 'ret', { retain: true });
        await store.commitPublish({ message: r, deliveries: [{ clientId: 'c', qos: 1, retain: false }, { clientId: 'other', qos: 1, retain: false }], retain: 'set' });
        await store.addIncomingQos2('c', epoch, 5);
        await store.deleteSession('c', epoch);
        assert.equal(await store.getSession('c'), undefined);
        assert.deepEqual((await store.listSessions()).map((s) => s.record.clientId), ['other']);
        assert.deepEqual(await store.listSubscriptions(), []);
        assert.deepEqual(await store.listRetained(), [r]);
        assert.deepEqual((await store.getSession('other'))?.deliveries.map((d) => d.message), [r]);
        // Re-created, it starts empty.
        await store.takeSession(record('c'), false);
        const snap = await store.getSession('c');
        assert.deepEqual([snap?.subscriptions, snap?.deliveries, snap?.incomingQos2], [[], [], []]);
      });

      test('deleteSession without an epoch removes whatever the owner', async () => {
        await store.takeSession(record('c'), false);
        await store.takeSession(record('c'), false);
        await store.deleteSession('c');
        assert.equal(await store.getSession('c'), undefined);
      });

      test('deleteSession of an absent session is a no-op', async () => {
        await store.deleteSession('nobody');
        await store.deleteSession('nobody', 3);
        assert.deepEqual(await store.listSessions(), []);
      });

      test('deleteSession with a stale epoch keeps the session', async () => {
        const old = await store.takeSession(record('c'), false);
        const cur = await store.takeSession(record('c'), false);
        await store.addSubscriptions('c', cur.epoch, [sub('x')]);
        await assertStale(store.deleteSession('c', old.epoch), 'c', old.epoch, cur.epoch);
        assert.deepEqual((await store.getSession('c'))?.subscriptions, [sub('x')]);
      });
    });

    describe('copies, not references', () => {
      test('mutating arguments after a call does not change the store', async () => {
        const rec = richRecord('c');
        const { epoch } = await store.takeSession(rec, false);
        rec.expiryInterval = 1;
        rec.will!.payload.fill(0);
        rec.will!.properties!.userProperties!['k'] = 'changed';
        const s = sub('a/#', 1, { subscriptionId: 1 });
        await store.addSubscriptions('c', epoch, [s]);
        s.qos = 0;
        const m = richMessage('a/1');
        const deliveries: NewDelivery[] = [{ clientId: 'c', qos: 1, retain: false, subscriptionIds: [1] }];
        const commit: PublishCommit = { message: m, deliveries, retain: 'set' };
        await store.commitPublish(commit);
        const expected = richMessage('a/1');
        expected.id = m.id;
        expected.createdAt = m.createdAt;
        m.payload.fill(7);
        m.topic = 'changed';
        m.properties!.correlationData!.fill(0);
        (m.properties!.userProperties!['multi'] as string[]).push('z');
        deliveries[0]!.subscriptionIds!.push(2);
        deliveries[0]!.qos = 0;
        const upd = record('c', { expiryInterval: 5 });
        await store.updateSession(upd, epoch);
        upd.expiryInterval = 6;

        const snap = await store.getSession('c');
        assert.equal(snap?.record.expiryInterval, 5);
        assert.deepEqual(snap?.subscriptions, [sub('a/#', 1, { subscriptionId: 1 })]);
        assert.deepEqual(snap?.deliveries.map((d) => [d.message, d.qos, d.subscriptionIds]), [[expected, 1, [1]]]);
        assert.deepEqual(await store.listRetained(), [expected]);

        const rec2 = richRecord('d');
        await store.takeSession(rec2, false);
        rec2.will!.payload.fill(0);
        assert.deepEqual((await store.getSession('d'))?.record, richRecord('d'));
      });

      test('mutating returned objects does not change the store', async () => {
        await populate(store);
        const before = await dump(store);

        const snap = (await store.getSession('alpha'))!;
        snap.record.expiryInterval = 0;
        snap.subscriptions.pop();
        snap.subscriptions[0]!.qos = 0;
        snap.deliveries[0]!.message.payload.fill(0);
        snap.deliveries[0]!.message.properties!.correlationData!.fill(1);
        snap.deliveries[0]!.subscriptionIds?.push(99);
        snap.deliveries[0]!.phase = 'queued';
        snap.deliveries.pop();
        snap.incomingQos2.push(1234);
        const sessions = await store.listSessions();
        sessions[0]!.record.clientId = 'renamed';
        sessions[0]!.epoch = -1;
        sessions.pop();
        const subs = await store.listSubscriptions();
        subs[0]!.subscription.filter = 'changed';
        const retained = await store.listRetained();
        retained[0]!.payload.fill(0);
        retained[0]!.topic = 'changed';
        const beta = (await store.getSession('beta'))!;
        beta.record.will!.payload.fill(0);
        beta.record.will!.properties!.userProperties!['k'] = 'x';

        assert.deepEqual(await dump(store), before);

        const taken = await store.takeSession(record('alpha'), false);
        taken.previous!.deliveries[0]!.message.payload.fill(3);
        taken.previous!.subscriptions.length = 0;
        const after = await snapshotOf(store, 'alpha');
        assert.deepEqual(after?.deliveries, before.snapshots[0]!.deliveries);
        assert.deepEqual(after?.subscriptions, before.snapshots[0]!.subscriptions);
      });

      test('entries sharing one message do not share it with callers', async () => {
        await store.takeSession(record('a'), false);
        await store.takeSession(record('b'), false);
        const m = message('t', 'original');
        await store.commitPublish({ message: m, deliveries: [{ clientId: 'a', qos: 1, retain: false }, { clientId: 'b', qos: 1, retain: false }], retain: 'set' });
        (await store.getSession('a'))!.deliveries[0]!.message.payload.write('XXXXXXXX');
        assert.equal((await store.getSession('b'))!.deliveries[0]!.message.payload.toString(), 'original');
        assert.equal((await store.listRetained())[0]!.payload.toString(), 'original');
      });
    });

    describe('binary data', () => {
      const payloads: Array<[string, Buffer]> = [
        ['empty', Buffer.alloc(0)],
        ['every byte value', binaryPayload()],
        ['64 KiB of noise', noise(65_536, 9)],
        ['a NUL byte', Buffer.from([0])],
        ['text that looks like JSON', Buffer.from('{"$b":"AAAA","type":"Buffer","data":[1]}')],
      ];
      for (const [label, payload] of payloads) {
        test(`payload round-trips byte-exact: ${label}`, async () => {
          await store.takeSession(record('c'), false);
          const m = richMessage(`bin/${label}`, Buffer.from(payload));
          await store.commitPublish({ message: m, deliveries: [{ clientId: 'c', qos: 2, retain: true }], retain: 'set' });
          const got = (await store.getSession('c'))!.deliveries[0]!.message;
          assert.ok(Buffer.isBuffer(got.payload), 'payload must be a Buffer');
          assert.ok(Buffer.isBuffer(got.properties?.correlationData), 'correlationData must be a Buffer');
          assert.equal(got.payload.length, payload.length);
          assert.ok(got.payload.equals(payload));
          assert.deepEqual(got, m);
          assert.deepEqual(await store.listRetained(), [m]);
        });
      }

      test('user properties keep array values, order and odd keys', async () => {
        await store.takeSession(record('c'), false);
        const m = richMessage('props');
        await store.commitPublish({ message: m, deliveries: [{ clientId: 'c', qos: 1, retain: false }] });
        const got = (await store.getSession('c'))!.deliveries[0]!.message;
        assert.deepEqual(got.properties?.userProperties, m.properties?.userProperties);
        assert.deepEqual(Object.keys(got.properties!.userProperties!), Object.keys(m.properties!.userProperties!));
      });

      test('will payloads and properties round-trip', async () => {
        await store.takeSession(richRecord('c'), false);
        const got = (await store.getSession('c'))!.record;
        assert.ok(Buffer.isBuffer(got.will?.payload));
        assert.ok(Buffer.isBuffer(got.will?.properties?.correlationData));
        assert.deepEqual(got, richRecord('c'));
      });

      test('topics and client ids with unicode and special characters', async () => {
        const id = 'client/ü/🚀 "quoted" \\ $b';
        const { epoch } = await store.takeSession(record(id), false);
        await store.addSubscriptions(id, epoch, [sub('$share/grp/ä/+/#')]);
        const m = message('$SYS/ü/🚀/"x"', 'y', { retain: true });
        await store.commitPublish({ message: m, deliveries: [{ clientId: id, qos: 1, retain: false }], retain: 'set' });
        assert.deepEqual((await store.getSession(id))?.deliveries[0]?.message, m);
        assert.deepEqual(await store.listSubscriptions(), [{ clientId: id, subscription: sub('$share/grp/ä/+/#') }]);
        assert.deepEqual(await store.listRetained(), [m]);
      });
    });

    // Registered only for durable backends, so a non-durable one runs no skipped tests.
    if (options.durable) describe('durability across close and reopen', () => {
      const durable = (_t: TestContext): boolean => {
        assert.ok(subject.reopen, 'a durable backend must provide reopen');
        return true;
      };

      test('everything survives: sessions, epochs, subscriptions, deliveries with phases, inbound QoS 2, retained', async (t) => {
        if (!durable(t)) return;
        const p = await populate(store);
        const before = await dump(store);
        await reopen();
        const after = await dump(store);
        assert.deepEqual(after, before);
        assert.deepEqual(after.sessions.map((s) => [s.record.clientId, s.epoch]), [['alpha', p.epochs['alpha']], ['beta', p.epochs['beta']], ['gamma', p.epochs['gamma']]]);
        const alpha = after.snapshots[0]!;
        assert.deepEqual(alpha.deliveries.map((d) => d.message.id), p.queued['alpha']);
        assert.deepEqual(alpha.deliveries.slice(0, 3).map((d) => [d.phase, d.packetId]), [['released', 1], ['sent', 2], ['sent', 30]]);
        assert.deepEqual(alpha.incomingQos2, [11, 13]);
        assert.deepEqual(after.snapshots[2]!.incomingQos2, [65535]);
        assert.deepEqual(after.retained.map((m) => [m.topic, m.payload.toString()]), [['sensors/1/temp', noise(3000, 42).toString()], ['status/kept', 'v2']]);
        assert.equal(await store.getSession('doomed'), undefined);
      });

      test('after reopen epochs and seqs keep increasing and old epochs stay fenced', async (t) => {
        if (!durable(t)) return;
        const p = await populate(store);
        const lastSeq = (await store.getSession('alpha'))!.deliveries.at(-1)!.seq;
        await reopen();
        const alpha = await store.takeSession(record('alpha'), false);
        assert.ok(alpha.epoch > Math.max(...Object.values(p.epochs)));
        await assertStale(store.addIncomingQos2('alpha', p.epochs['alpha']!, 1), 'alpha', p.epochs['alpha']!, alpha.epoch);
        const doomed = await store.takeSession(record('doomed'), false);
        assert.equal(doomed.existed, false);
        assert.ok(doomed.epoch > alpha.epoch);
        const { seqs } = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'alpha', qos: 1, retain: false }] });
        assert.ok(seqs[0]! > lastSeq);
        // Packet ids still resolve to their entries.
        await store.markReleased('alpha', alpha.epoch, 30);
        await store.completeDelivery('alpha', alpha.epoch, 2);
        assert.deepEqual((await store.getSession('alpha'))!.deliveries.slice(0, 2).map((d) => [d.phase, d.packetId]), [['released', 1], ['released', 30]]);
      });

      test('writes after a reopen survive the next reopen, over several cycles', async (t) => {
        if (!durable(t)) return;
        await populate(store);
        for (let cycle = 0; cycle < 3; cycle++) {
          const { epoch } = await store.takeSession(record(`cycle-${cycle}`), cycle === 1);
          await store.addSubscriptions(`cycle-${cycle}`, epoch, [sub(`c/${cycle}`)]);
          await store.commitPublish({ message: message(`c/${cycle}`, noise(100, cycle + 1), { retain: true }), deliveries: [{ clientId: `cycle-${cycle}`, qos: 1, retain: false }, { clientId: 'gamma', qos: 1, retain: false }], retain: 'set' });
          const gamma = await store.takeSession(record('gamma'), false);
          const first = (await store.getSession('gamma'))!.deliveries[0]!;
          await store.markSent('gamma', gamma.epoch, first.seq, 100 + cycle);
          await store.completeDelivery('gamma', gamma.epoch, 100 + cycle);
          const before = await dump(store);
          await reopen();
          assert.deepEqual(await dump(store), before, `cycle ${cycle}`);
        }
      });

      test('deletions survive: sessions, retained, completed and dropped deliveries, inbound ids', async (t) => {
        if (!durable(t)) return;
        const p = await populate(store);
        const e = p.epochs['alpha']!;
        const alpha = (await store.getSession('alpha'))!;
        await store.completeDelivery('alpha', e, 1);
        await store.dropDeliveries('alpha', e, [alpha.deliveries.at(-1)!.seq]);
        await store.removeIncomingQos2('alpha', e, 11);
        await store.removeSubscriptions('alpha', e, ['sensors/+/temp']);
        await store.deleteSession('beta', p.epochs['beta']);
        await store.commitPublish({ message: message('status/kept', ''), deliveries: [], retain: 'delete' });
        const before = await dump(store);
        await reopen();
        assert.deepEqual(await dump(store), before);
        assert.equal(await store.getSession('beta'), undefined);
        assert.deepEqual((await store.listRetained()).map((m) => m.topic), ['sensors/1/temp']);
      });

      test('refused writes leave no trace after reopen', async (t) => {
        if (!durable(t)) return;
        const old = await store.takeSession(record('c'), false);
        await store.takeSession(record('s'), false);
        await store.takeSession(record('c'), false);
        const before = await dump(store);
        await assert.rejects(store.addSubscriptions('c', old.epoch, [sub('x')]), StaleEpochError);
        await assert.rejects(store.deleteSession('c', old.epoch), StaleEpochError);
        await assert.rejects(
          store.commitPublish({ message: message('x', 'y'), deliveries: [{ clientId: 's', qos: 1, retain: false }], retain: 'set', incomingQos2: { clientId: 'c', epoch: old.epoch, packetId: 1 } }),
          StaleEpochError,
        );
        await reopen();
        assert.deepEqual(await dump(store), before);
      });

      test('concurrent writes all survive reopen, in order', async (t) => {
        if (!durable(t)) return;
        const { epoch } = await store.takeSession(record('c'), false);
        const writes: Array<Promise<unknown>> = [];
        for (let i = 0; i < 100; i++) {
          writes.push(store.commitPublish({ message: message(`t/${i}`, noise(i * 10, i + 1), { retain: true }), deliveries: [{ clientId: 'c', qos: 1, retain: false }], retain: i % 3 === 0 ? 'set' : undefined }));
          if (i % 10 === 0) writes.push(store.addIncomingQos2('c', epoch, i + 1));
        }
        await Promise.all(writes);
        const before = await dump(store);
        assert.equal(before.snapshots[0]!.deliveries.length, 100);
        await reopen();
        assert.deepEqual(await dump(store), before);
      });

      test('binary data survives byte-exact', async (t) => {
        if (!durable(t)) return;
        await store.takeSession(richRecord('c'), false);
        const messages = [Buffer.alloc(0), binaryPayload(), noise(200_000, 5)].map((p, i) => richMessage(`bin/${i}`, p));
        for (const m of messages) await store.commitPublish({ message: m, deliveries: [{ clientId: 'c', qos: 2, retain: true }], retain: 'set' });
        await reopen();
        const snap = (await store.getSession('c'))!;
        assert.deepEqual(snap.record, richRecord('c'));
        assert.deepEqual(snap.deliveries.map((d) => d.message), messages);
        for (const d of snap.deliveries) assert.ok(Buffer.isBuffer(d.message.payload) && Buffer.isBuffer(d.message.properties?.correlationData));
        assert.deepEqual((await dump(store)).retained, messages);
      });
    });
  });
}
