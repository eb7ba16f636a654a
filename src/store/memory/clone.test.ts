import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { copyEntry, copyMessage, deepCopy } from './clone.js';
import type { DeliveryEntry, StoredMessage } from '../types.js';

const messageArb: fc.Arbitrary<StoredMessage> = fc
  .record(
    {
      id: fc.string(),
      topic: fc.string(),
      payload: fc.uint8Array({ maxLength: 16 }).map((u) => Buffer.from(u)),
      qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
      retain: fc.boolean(),
      createdAt: fc.nat(),
      expiresAt: fc.option(fc.nat(), { nil: undefined }),
      properties: fc.option(
        fc.record(
          {
            contentType: fc.string(),
            correlationData: fc.uint8Array({ maxLength: 4 }).map((u) => Buffer.from(u)),
            userProperties: fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 2 }))),
            payloadFormatIndicator: fc.option(fc.boolean(), { nil: undefined }),
          },
          { requiredKeys: [] },
        ),
        { nil: undefined },
      ),
    },
    { requiredKeys: ['id', 'topic', 'payload', 'qos', 'retain', 'createdAt'] },
  )
  .map((m) => m as StoredMessage);

const entryArb: fc.Arbitrary<DeliveryEntry> = fc
  .record(
    {
      seq: fc.integer({ min: 1 }),
      message: messageArb,
      qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
      retain: fc.boolean(),
      phase: fc.constantFrom('queued' as const, 'sent' as const, 'released' as const),
      subscriptionIds: fc.option(fc.array(fc.integer({ min: 1, max: 268435455 }), { maxLength: 3 }), { nil: undefined }),
      packetId: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    },
    { requiredKeys: ['seq', 'message', 'qos', 'retain', 'phase'] },
  )
  .map((e) => e as DeliveryEntry);

test('copyEntry / copyMessage give what deepCopy gives (undefined keys dropped), sharing nothing with the original', () => {
  fc.assert(
    fc.property(entryArb, (e) => {
      const fast = copyEntry(e);
      assert.deepStrictEqual(fast, deepCopy(e));
      assert.deepStrictEqual(copyMessage(e.message), deepCopy(e.message));
      assert.notEqual(fast.message, e.message);
      if (e.subscriptionIds) assert.notEqual(fast.subscriptionIds, e.subscriptionIds);
      if (e.message.properties) assert.notEqual(fast.message.properties, e.message.properties);
      // Changing the copy leaves the original as it was.
      const before = deepCopy(e);
      fast.phase = 'released';
      fast.message.payload.fill(0xee);
      fast.subscriptionIds?.push(7);
      assert.deepStrictEqual(deepCopy(e), before);
    }),
    { seed: 0xc10e, numRuns: 300 },
  );
});
