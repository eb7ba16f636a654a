import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeJson, encodeJson } from './bus.js';

test('encodeJson / decodeJson: Buffers anywhere (slices of larger memory too) come back byte for byte', () => {
  const big = Buffer.from('0123456789abcdef');
  const item = {
    m: { id: 'n-1', topic: 'a/b', payload: big.subarray(3, 9), qos: 1, retain: false, createdAt: 1, properties: { correlationData: Buffer.alloc(0), userProperties: { k: ['v', 'w'] } } },
    d: [{ c: 'client', q: 1, r: false, s: [1, 2] }],
  };
  const back = decodeJson<typeof item>(encodeJson([item, item]));
  assert.deepEqual(back, [item, item]);
  assert.ok(Buffer.isBuffer(back[0]!.m.payload));
  assert.equal(back[0]!.m.payload.toString(), '345678');
  assert.equal(back[1]!.m.properties.correlationData.length, 0);
  // The caller's objects are not changed by encoding.
  assert.ok(Buffer.isBuffer(item.m.payload));
});

test('the wire form is the one nodes of earlier versions write and read: {"$b": base64}', () => {
  assert.equal(encodeJson({ p: Buffer.from('hi'), n: [1, { q: Buffer.from([0xff]) }] }), '{"p":{"$b":"aGk="},"n":[1,{"q":{"$b":"/w=="}}]}');
  assert.deepEqual(decodeJson('{"p":{"$b":"aGk="},"x":[{"$b":""}]}'), { p: Buffer.from('hi'), x: [Buffer.alloc(0)] });
  // Values without Buffers are plain JSON.
  const plain = { a: 1, b: ['x', null, true], c: { d: 'e' }, t: new Date(0) };
  assert.equal(encodeJson(plain), JSON.stringify(plain));
});

test('encodeJson / decodeJson round-trip random JSON values with Buffers', () => {
  const leaf = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 20 }).map((u) => Buffer.from(u)));
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 4 }).filter((k) => k !== '$b' && k !== '__proto__'), tie('v'), { maxKeys: 4 }).map((d) => ({ ...d }))),
  })).v;
  fc.assert(
    fc.property(value, (v) => {
      assert.deepEqual(decodeJson(encodeJson(v)), v);
    }),
    { seed: 0xb05, numRuns: 300 },
  );
});
