/**
 * Abuse limits: token buckets with a fake clock, the bounded per-source table, source keys, and
 * the limits enforced over real sockets (CONNACK 0x9F, DISCONNECT 0x96, SUBACK 0x8F).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IConnackPacket, IDisconnectPacket, ISubackPacket } from 'mqtt-packet';
import { AbuseLimiter, TokenBucket, countWildcards, sourceKey } from './limits.js';
import { RawClient, startTestBroker } from '../testing/harness.js';

function limiter(over: Partial<ConstructorParameters<typeof AbuseLimiter>[0]> = {}) {
  let t = 1_000_000;
  const l = new AbuseLimiter({ connectRatePerSource: 0, connectRate: 0, publishRatePerClient: 0, maxFilterWildcards: 0, now: () => t, ...over });
  return { l, advance: (ms: number) => (t += ms) };
}

describe('TokenBucket', () => {
  test('bursts up to the rate, then refills at the rate', () => {
    const b = new TokenBucket(10, 0);
    for (let i = 0; i < 10; i++) assert.equal(b.take(0), true);
    assert.equal(b.take(0), false);
    assert.equal(b.take(99), false); // 0.99 token
    assert.equal(b.take(100), true); // 1 token after 100 ms
    assert.equal(b.take(100), false);
    assert.equal(b.isFull(10_000), true);
  });
});

describe('AbuseLimiter', () => {
  test('per-source CONNECT rate: each source has its own bucket', () => {
    const { l, advance } = limiter({ connectRatePerSource: 3 });
    for (let i = 0; i < 3; i++) assert.equal(l.admitConnect(`10.0.0.1:${1000 + i}`), undefined);
    assert.equal(l.admitConnect('10.0.0.1:2000'), 'connect_rate_per_source');
    assert.equal(l.admitConnect('10.0.0.2:2000'), undefined);
    advance(334);
    assert.equal(l.admitConnect('10.0.0.1:2001'), undefined);
    assert.equal(l.admitConnect('10.0.0.1:2002'), 'connect_rate_per_source');
  });

  test('node-wide CONNECT rate', () => {
    const { l, advance } = limiter({ connectRate: 5 });
    for (let i = 0; i < 5; i++) assert.equal(l.admitConnect(`10.0.0.${i}:1`), undefined);
    assert.equal(l.admitConnect('10.0.0.9:1'), 'connect_rate');
    advance(1000);
    assert.equal(l.admitConnect('10.0.0.9:1'), undefined);
  });

  test('the per-source table stays bounded (idle entries go first, then the least recently used)', () => {
    const { l, advance } = limiter({ connectRatePerSource: 2, maxSources: 100 });
    // A hot source that keeps being used survives a flood of one-off sources.
    l.admitConnect('192.0.2.1:1');
    l.admitConnect('192.0.2.1:2');
    for (let i = 0; i < 10_000; i++) {
      if (i % 50 === 0) assert.equal(l.admitConnect('192.0.2.1:3'), 'connect_rate_per_source');
      l.admitConnect(`198.51.${i >> 8}.${i & 255}:1`);
      assert.ok(l.trackedSources <= 100);
    }
    advance(60_000);
    for (let i = 0; i < 1000; i++) l.admitConnect(`203.0.113.${i & 255}:${i}`);
    assert.ok(l.trackedSources <= 100);
  });

  test('publish rate per client', () => {
    const { l, advance } = limiter({ publishRatePerClient: 4 });
    const a = {};
    const b = {};
    for (let i = 0; i < 4; i++) assert.equal(l.admitPublish(a), true);
    assert.equal(l.admitPublish(a), false);
    assert.equal(l.admitPublish(b), true);
    advance(250);
    assert.equal(l.admitPublish(a), true);
    assert.equal(limiter().l.admitPublish(a), true); // 0 = off
  });

  test('wildcard count', () => {
    assert.equal(countWildcards('a/b/c'), 0);
    assert.equal(countWildcards('+/+/#'), 3);
    assert.equal(countWildcards('a+/#b/+'), 1); // only whole levels are wildcards
    assert.equal(countWildcards('#'), 1);
    const { l } = limiter({ maxFilterWildcards: 2 });
    assert.equal(l.tooManyWildcards('+/a/+'), false);
    assert.equal(l.tooManyWildcards('+/+/#'), true);
  });

  test('source keys: port dropped, IPv6 by /64, IPv4-mapped as IPv4', () => {
    assert.equal(sourceKey('10.1.2.3:5555'), '10.1.2.3');
    assert.equal(sourceKey('::ffff:10.1.2.3:5555'), '10.1.2.3');
    assert.equal(sourceKey('2001:db8:1:2:3:4:5:6:5555'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('2001:db8:1:2::9:5555'), '2001:db8:1:2::/64');
    assert.equal(sourceKey('[2001:db8::1]:5555'), '2001:db8:0:0::/64');
    assert.equal(sourceKey('::1:5555'), '0:0:0:0::/64');
    assert.equal(sourceKey('unknown:0'), 'unknown');
  });
});

describe('limits over sockets', () => {
  test('CONNECT rate per source: v5 gets CONNACK 0x9F, 3.1.1 is closed; counted', async (t) => {
    const b = await startTestBroker({ limits: { connectRatePerSource: 3, connectRate: 0 } });
    t.after(() => b.stop());
    const clients: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await RawClient.connect(b.port, 5);
      clients.push(c);
      assert.equal((await c.handshake()).reasonCode, 0);
    }
    const v5 = await RawClient.connect(b.port, 5);
    const ack = (await v5.handshake()) as IConnackPacket;
    assert.equal(ack.reasonCode, 0x9f);
    await v5.expectClose();
    const v3 = await RawClient.connect(b.port, 4);
    v3.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'v3', clean: true, keepalive: 10 });
    assert.deepEqual(await v3.expectClose(), []);
    assert.equal(b.node.broker.stats.limitHits['connect_rate_per_source'], 2);
    for (const c of clients) c.destroy();
  });

  test('node CONNECT rate', async (t) => {
    const b = await startTestBroker({ limits: { connectRatePerSource: 0, connectRate: 2 } });
    t.after(() => b.stop());
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await RawClient.connect(b.port, 5);
      codes.push((await c.handshake()).reasonCode ?? -1);
      c.destroy();
    }
    assert.deepEqual(codes, [0, 0, 0x9f, 0x9f]);
    assert.equal(b.node.broker.stats.limitHits['connect_rate'], 2);
  });

  test('publish rate: v5 DISCONNECT 0x96, 3.1.1 closed', async (t) => {
    const b = await startTestBroker({ limits: { publishRatePerClient: 5 } });
    t.after(() => b.stop());
    const c = await RawClient.connect(b.port, 5);
    await c.handshake();
    for (let i = 0; i < 20; i++) c.send({ cmd: 'publish', topic: 'r/a', payload: Buffer.from('x'), qos: 0, retain: false, dup: false });
    const got = await c.expectClose();
    const d = got.find((p) => p.cmd === 'disconnect') as IDisconnectPacket | undefined;
    assert.equal(d?.reasonCode, 0x96);
    const v3 = await RawClient.connect(b.port, 4);
    await v3.handshake();
    for (let i = 0; i < 20; i++) v3.send({ cmd: 'publish', topic: 'r/b', payload: Buffer.from('x'), qos: 1, messageId: i + 1, retain: false, dup: false });
    await v3.expectClose();
    assert.equal(b.node.broker.stats.limitHits['publish_rate'], 2);
  });

  test('filters with too many wildcards: SUBACK 0x8F (v5) / 0x80 (3.1.1)', async (t) => {
    const b = await startTestBroker({ limits: { maxFilterWildcards: 2 } });
    t.after(() => b.stop());
    for (const v of [5, 4] as const) {
      const c = await RawClient.connect(b.port, v);
      await c.handshake();
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '+/x/#', qos: 1 }, { topic: '+/+/+', qos: 1 }] });
      const ack = (await c.next('suback')) as ISubackPacket;
      assert.deepEqual(ack.granted, [1, v === 5 ? 0x8f : 0x80]);
      c.destroy();
    }
    assert.equal(b.node.broker.stats.limitHits['filter_wildcards'], 2);
  });

  test('defaults leave ordinary use alone', async (t) => {
    const b = await startTestBroker();
    t.after(() => b.stop());
    const clients = await Promise.all(Array.from({ length: 60 }, () => RawClient.connect(b.port, 5)));
    const acks = await Promise.all(clients.map((c) => c.handshake()));
    assert.ok(acks.every((a) => a.reasonCode === 0));
    for (const c of clients) c.destroy();
  });
});
