import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InflightTable } from './inflight.js';
import { Session } from './session.js';
import type { DeliveryEntry } from '../store/types.js';

const entry = (seq: number, packetId: number): DeliveryEntry => ({
  seq,
  message: { id: `m${seq}`, topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, createdAt: 0 },
  qos: 1,
  retain: false,
  phase: 'sent',
  packetId,
});

type Op = { kind: 'send' } | { kind: 'restore'; id: number } | { kind: 'ack'; pick: number } | { kind: 'ackUnknown'; id: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ kind: 'send' as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 65535 }).map((id) => ({ kind: 'restore' as const, id })) },
  { weight: 4, arbitrary: fc.nat().map((pick) => ({ kind: 'ack' as const, pick })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 65535 }).map((id) => ({ kind: 'ackUnknown' as const, id })) },
);

test('InflightTable behaves as a Map of packet id -> entry, iterated in seq order', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 400 }), fc.integer({ min: 1, max: 65535 }), (ops, start) => {
      const table = new InflightTable();
      const model = new Map<number, DeliveryEntry>();
      let next = start;
      let seq = 1;
      for (const op of ops) {
        if (op.kind === 'send') {
          // As Session.allocatePacketId: the next identifier the table can take.
          let id = 0;
          for (;;) {
            const c = next;
            next = c === 65535 ? 1 : c + 1;
            if (table.freeFor(c)) {
              id = c;
              break;
            }
          }
          assert.ok(!model.has(id), `identifier ${id} handed out while in flight [MQTT-2.2.1-3]`);
          const e = entry(seq++, id);
          table.set(id, e);
          model.set(id, e);
        } else if (op.kind === 'restore') {
          if (model.has(op.id)) continue;
          const e = entry(seq++, op.id);
          table.set(op.id, e);
          model.set(op.id, e);
        } else if (op.kind === 'ack') {
          const ids = [...model.keys()];
          if (ids.length === 0) continue;
          const id = ids[op.pick % ids.length]!;
          assert.equal(table.delete(id), true);
          model.delete(id);
        } else {
          assert.equal(table.delete(op.id), model.delete(op.id));
        }
        assert.equal(table.size, model.size);
      }
      for (const [id, e] of model) {
        assert.equal(table.get(id), e);
        assert.ok(table.has(id));
      }
      assert.equal(table.get(0), undefined);
      const expected = [...model.values()].sort((a, b) => a.seq - b.seq).map((e) => [e.packetId, e.seq]);
      assert.deepEqual([...table].map(([id, e]) => [id, e.seq]), expected);
    }),
    { seed: 0x1f17, numRuns: 300 },
  );
});

test('InflightTable: deleting while iterating is safe; an entry must carry its own packet id', () => {
  const table = new InflightTable();
  for (let i = 1; i <= 40; i++) table.set(i, entry(i, i));
  for (const [id] of table) if (id % 2 === 0) table.delete(id);
  assert.equal(table.size, 20);
  assert.deepEqual([...table].map(([id]) => id), Array.from({ length: 20 }, (_, i) => 2 * i + 1));
  assert.throws(() => table.set(7, entry(99, 8)), /packet id 8 stored under 7/);
});

test('Session.allocatePacketId never hands out an identifier in flight, across the wrap at 65535 [MQTT-2.2.1-3]', () => {
  const s = new Session({ clientId: 'c' } as never, false, 1);
  // A message stuck in flight while 70,000 others come and go.
  const stuck = s.allocatePacketId()!;
  s.inflight.set(stuck, entry(0, stuck));
  for (let i = 1; i <= 70_000; i++) {
    const id = s.allocatePacketId()!;
    assert.notEqual(id, stuck);
    assert.ok(id >= 1 && id <= 65535);
    s.inflight.set(id, entry(i, id));
    s.inflight.delete(id);
  }
  assert.equal(s.inflight.size, 1);
});

test('InflightTable keeps its size across bursts that fill it again and again; after a smaller burst it shrinks to fit that one', () => {
  const table = new InflightTable();
  const burst = (n: number, from: number) => {
    for (let i = 0; i < n; i++) table.set(from + i, entry(i, from + i));
    const capacity = table.capacity;
    for (let i = 0; i < n; i++) assert.ok(table.delete(from + i));
    assert.equal(table.size, 0);
    return capacity;
  };
  const grown = burst(300, 1);
  assert.ok(grown >= 600, `300 entries in ${grown} slots (at most half full)`);
  for (let k = 0; k < 5; k++) {
    burst(300, 1 + k * 300);
    assert.equal(table.capacity, grown, 'the same bursts again: no shrink and regrow');
  }
  burst(10, 40_000); // everything acknowledged after a burst of ten
  assert.equal(table.capacity, 32, 'sized back to fit the last burst: 16 slots per 8 entries, a power of two');
  burst(3000, 1);
  burst(2, 1);
  assert.equal(table.capacity, 16, 'never below the minimum');
});
