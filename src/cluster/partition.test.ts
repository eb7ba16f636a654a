/**
 * Network partition between one node and Redis (design notes §2, invariants 1-3): node a reaches
 * Redis only through a TCP proxy written here. The proxy is cut (connections destroyed, new ones
 * accepted and black-holed) while a client publishes QoS 1 through a. Node a must not acknowledge
 * what it cannot store, must disconnect its clients after the node TTL (self-fencing), and its
 * persistent subscriber resumes on node b with every acknowledged message. The proxy heals: a
 * rejoins (accepts connections, alive in the registry) and the session now on b keeps working,
 * QoS 2 exactly once.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { readClusterStatus } from '../cli/cluster.js';
import { JsClient, endAllJs, killAll, sleep, until, within } from '../interop/helpers.js';
import { RawClient } from '../testing/harness.js';
import { startRedis } from '../testing/redis.js';
import { startClusterNode } from './testing.js';

after(async () => {
  await endAllJs();
  await killAll();
});

/** A TCP forwarder to Redis that can be cut (partition) and healed. */
class CuttableProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  cut = false;
  port = 0;

  constructor(private readonly upstreamPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
  }

  private accept(client: net.Socket): void {
    this.track(client);
    if (this.cut) return; // black hole: accepted, never forwarded
    const upstream = net.connect(this.upstreamPort, '127.0.0.1');
    this.track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Partition: every connection dies, new ones go nowhere. */
  partition(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  /** Heal: black-holed connections are reset (the client reconnects), new ones are forwarded. */
  heal(): void {
    this.cut = false;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

test('partition: a node cut off from Redis stops acknowledging, fences itself, rejoins without corrupting moved sessions', { timeout: 85_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const proxy = new CuttableProxy(redis.port);
  await proxy.listen();
  t.after(() => proxy.close());
  const a = await startClusterNode('a', `redis://127.0.0.1:${proxy.port}`);
  const b = await startClusterNode('b', redisUrl);
  const aUrl = `mqtt://127.0.0.1:${a.port}`;
  const bUrl = `mqtt://127.0.0.1:${b.port}`;

  // Persistent subscriber on a: QoS 1 and QoS 2 subscriptions.
  // Every message the subscriber got, on both connections (JsClient records from the first one).
  const subs: JsClient[] = [];
  const got = (topic: string) => subs.flatMap((c) => c.messages.filter((m) => m.topic === topic).map((m) => Number(m.payload)));
  const subOpts = { clientId: 'pt-sub', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } };
  const sub1 = await JsClient.connect(aUrl, subOpts);
  subs.push(sub1);
  await sub1.subscribe(['pt/q1', 'pt/q2'], 2);

  // Publisher on a: numbered QoS 1, a window of 5; reconnects by itself (cycling a, b) and
  // re-sends what was not acknowledged.
  const pub: MqttClient = mqtt.connect(aUrl, {
    clientId: 'pt-pub',
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 200,
    // A node cut off from Redis refuses CONNECT (0x88): keep trying (MQTT.js stops otherwise).
    reconnectOnConnackError: true,
    connectTimeout: 2000,
    servers: [
      { host: '127.0.0.1', port: a.port },
      { host: '127.0.0.1', port: b.port },
    ],
  });
  t.after(() => pub.end(true));
  pub.on('error', () => undefined);
  await within(new Promise<void>((r) => pub.once('connect', () => r())), 8000, 'publisher connect');

  const N = 200;
  const ackedAt = new Map<number, number>();
  const ackCodes = new Map<number, number | undefined>();
  let cutAt: number | undefined;
  let next = 1;
  const publishing = (async () => {
    const inflight = new Set<Promise<void>>();
    const deadline = Date.now() + 50_000;
    while (next <= N && Date.now() < deadline) {
      while (inflight.size < 5 && next <= N) {
        const seq = next++;
        const pr: Promise<void> = pub
          .publishAsync('pt/q1', String(seq), { qos: 1 })
          .then((ack) => {
            ackedAt.set(seq, Date.now());
            ackCodes.set(seq, (ack as { reasonCode?: number } | undefined)?.reasonCode);
          })
          .catch(() => undefined)
          .finally(() => inflight.delete(pr));
        inflight.add(pr);
      }
      await Promise.race(inflight);
      await sleep(cutAt === undefined ? 10 : 20);
    }
    await Promise.all(inflight);
  })();

  // An idle client on a: nothing it does touches Redis, so only self-fencing ends it.
  const idle = await RawClient.connect(a.port, 5);
  const idleAck = await idle.handshake({ clientId: 'pt-idle', clean: false, properties: { sessionExpiryInterval: 600 } });
  assert.equal(idleAck.reasonCode, 0);
  const idleClosed = idle.closedPromise.then(() => Date.now());
  const subClosed = new Promise<number>((r) => sub1.client.once('close', () => r(Date.now())));

  await until(() => ackedAt.size >= 40, 15_000, 'first messages acknowledged through a');
  let pubBackAt: number | undefined;
  // The CONNACK itself (MQTT.js emits 'connect' only after re-sending its stored publishes).
  pub.on('packetreceive', (p) => {
    if (p.cmd === 'connack' && p.reasonCode === 0 && cutAt !== undefined && pubBackAt === undefined) pubBackAt = Date.now();
  });
  cutAt = Date.now();
  proxy.partition();

  // The subscriber's session writes fail at once (it may be kicked right away, 0x80); the idle
  // client goes when a fences itself: within the node TTL (1.5 s) plus a heartbeat.
  await within(subClosed, 6000, 'node a disconnects its subscriber after losing Redis');
  const closedAt = await within(idleClosed, 6000, 'node a disconnects its idle client (self-fencing)');
  const fenceMs = closedAt - cutAt;
  t.diagnostic(`node a fenced itself ${fenceMs} ms after the cut`);
  assert.ok(fenceMs >= 500 && fenceMs <= 2500, `fenced within the node TTL (took ${fenceMs} ms)`);
  const last = idle.pending();
  assert.deepEqual(idle.parseErrors, [], 'the DISCONNECT is valid MQTT 5');
  assert.deepEqual(last.map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode]), [['disconnect', 0x9c]], 'DISCONNECT Use another server');

  // While cut off, a refuses new connections.
  const refused = await JsClient.connect(aUrl, { clientId: 'pt-late', protocolVersion: 5 }).then(
    (c) => {
      void c.end();
      return 'accepted';
    },
    (e: Error) => e.message,
  );
  assert.notEqual(refused, 'accepted', 'a refuses connections while cut off');

  // The subscriber resumes on b: session present, every acknowledged message delivered.
  const sub2 = await JsClient.connect(bUrl, subOpts);
  subs.push(sub2);
  assert.equal(sub2.connack?.sessionPresent, true, 'session present on b');

  await within(publishing, 60_000, 'publishing finished');
  // Nothing was acknowledged by a after the cut (it could not store): every later ack came after
  // the publisher had reconnected (to b, or to a once healed).
  assert.ok(pubBackAt !== undefined, 'publisher reconnected');
  const ackedByA = [...ackedAt.entries()].filter(([, at]) => at > cutAt! + 50 && at < pubBackAt!);
  assert.deepEqual(ackedByA.map(([s, at]) => `${s} +${at - cutAt!}ms code ${ackCodes.get(s)}`), [], `no PUBACK from a while it could not store (publisher back at +${pubBackAt! - cutAt}ms)`);
  t.diagnostic(`publisher reconnected ${pubBackAt! - cutAt} ms after the cut`);
  assert.equal(ackedAt.size, N, `every publish acknowledged in the end (${ackedAt.size}/${N})`);
  const q1 = () => got('pt/q1');
  await until(() => [...ackedAt.keys()].every((s) => q1().includes(s)), 15_000, 'every acknowledged message delivered').catch(() => undefined);
  const missing = [...ackedAt.keys()].filter((s) => !q1().includes(s)).sort((x, y) => x - y);
  assert.deepEqual(missing, [], 'acknowledged messages lost');

  // Heal: a rejoins.
  proxy.heal();
  let status = await readClusterStatus({ url: redisUrl }, 'skein:');
  for (const deadline = Date.now() + 10_000; !status.nodes.find((n) => n.id === 'a')?.alive && Date.now() < deadline; ) {
    await sleep(200);
    status = await readClusterStatus({ url: redisUrl }, 'skein:');
  }
  assert.deepEqual(status.nodes.map((n) => [n.id, n.alive]), [['a', true], ['b', true]], 'a alive again in the registry');
  let rejoined: JsClient | undefined;
  for (const deadline = Date.now() + 10_000; !rejoined && Date.now() < deadline; ) {
    rejoined = await JsClient.connect(aUrl, { clientId: 'pt-pub2', protocolVersion: 5 }).catch(() => undefined);
    if (!rejoined) await sleep(200);
  }
  assert.ok(rejoined, 'a accepts connections again');

  // The session on b keeps working: QoS 2 from a (rejoined) and from b, exactly once each.
  await sleep(500);
  const pubB = await JsClient.connect(bUrl, { clientId: 'pt-pub3', protocolVersion: 5 });
  const M = 40;
  for (let i = 1; i <= M; i++) {
    await (i % 2 === 0 ? rejoined : pubB).publish('pt/q2', String(i), 2);
  }
  const q2 = () => got('pt/q2');
  await until(() => q2().length >= M, 10_000, `QoS 2 messages after the heal (${q2().length}/${M})`);
  await sleep(500);
  assert.deepEqual([...q2()].sort((x, y) => x - y), Array.from({ length: M }, (_, i) => i + 1), 'QoS 2 exactly once after the heal');
  assert.equal(sub2.closed, false, 'the subscriber on b is still connected');
  assert.equal(sub2.disconnects.length, 0, 'the subscriber on b was not disconnected');
  await Promise.all([sub2.end(), rejoined.end(), pubB.end()]);
});
