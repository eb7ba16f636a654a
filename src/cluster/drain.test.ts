/**
 * Graceful drain through a real HAProxy (readiness check `GET /ready/lb`, `disable-on-404`) and a
 * real redis-server, with two `skein start` processes: SIGTERM node a; its health endpoint turns
 * to draining, new CONNECTs there are refused (0x88 / 3), its clients leave at the configured rate,
 * the MQTT 5 subscriber gets DISCONNECT 0x8B with node b's address as Server Reference, both
 * clients resume on b through HAProxy, every acknowledged QoS 2 message arrives exactly once, and
 * a exits 0.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { readClusterStatus } from '../cli/cluster.js';
import { JsClient, killAll, sleep, until, within } from '../interop/helpers.js';
import { startRedis } from '../testing/redis.js';
import { freePort, startClusterNode, startHaproxy } from './testing.js';

after(() => killAll());

async function httpStatus(port: number, path: string, method = 'GET'): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status;
}

test('drain: SIGTERM moves clients to another node at a bounded rate with zero loss', { timeout: 120_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const [aHealth, bHealth, bPort] = [await freePort(), await freePort(), await freePort()];
  // One client per second on a, so the drain can be watched.
  const a = await startClusterNode('a', redisUrl, { env: { SKEIN_HEALTH__PORT: String(aHealth), SKEIN_HEALTH__HOST: '127.0.0.1', SKEIN_CLUSTER__DRAIN_RATE: '1' } });
  assert.equal(await httpStatus(aHealth, '/ready'), 200);
  assert.equal(await httpStatus(aHealth, '/ready/lb'), 200);
  assert.equal(await httpStatus(aHealth, '/live'), 200);
  assert.equal(await httpStatus(aHealth, '/drain'), 405, 'drain needs POST');

  // b is in the backend but not started yet: the clients land on a.
  const lb = await startHaproxy([{ name: 'mqtt', servers: [{ name: 'a', port: a.port }, { name: 'b', port: bPort }] }], {
    httpCheck: { path: '/ready/lb', healthPorts: { a: aHealth, b: bHealth } },
  });
  t.after(() => lb.proc.kill('SIGTERM'));
  await sleep(800); // HAProxy has checked b (down) by now
  const url = `mqtt://127.0.0.1:${lb.ports.mqtt}`;

  const received: number[] = [];
  const disconnects: Array<{ reasonCode?: number; serverReference?: string; at: number }> = [];
  const sub = mqtt.connect(url, { clientId: 'drain-sub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 200, connectTimeout: 3000, keepalive: 10 });
  t.after(() => sub.end(true));
  sub.on('error', () => undefined);
  sub.on('message', (_t, p) => received.push(Number(p.toString())));
  sub.on('disconnect', (p) => disconnects.push({ reasonCode: p.reasonCode, serverReference: p.properties?.serverReference, at: Date.now() }));
  await within(new Promise<void>((r) => sub.once('connect', () => r())), 10_000, 'subscriber connect');
  await sub.subscribeAsync('dr/q2', { qos: 2 });

  const pubDisconnects: number[] = [];
  const pub: MqttClient = mqtt.connect(url, { clientId: 'drain-pub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 200, connectTimeout: 3000, keepalive: 10 });
  t.after(() => pub.end(true));
  pub.on('error', () => undefined);
  pub.on('disconnect', () => pubDisconnects.push(Date.now()));
  await within(new Promise<void>((r) => pub.once('connect', () => r())), 10_000, 'publisher connect');

  const b = await startClusterNode('b', redisUrl, { port: bPort, env: { SKEIN_HEALTH__PORT: String(bHealth), SKEIN_HEALTH__HOST: '127.0.0.1' } });
  await sleep(800); // HAProxy sees b up
  const before = await readClusterStatus({ url: redisUrl }, 'skein:');
  assert.deepEqual(before.nodes.map((n) => [n.id, n.alive, n.clients]), [['a', true, 2], ['b', true, 0]], 'both clients on a');

  // Numbered QoS 2 publishes, a window of 5 in flight, before, during and after the drain.
  const N = 150;
  const acked: number[] = [];
  const ackAt = new Map<number, number>();
  const recvAt = new Map<number, number>();
  const subConnects: number[] = [];
  const pubConnects: number[] = [];
  sub.on('connect', () => subConnects.push(Date.now()));
  pub.on('connect', () => pubConnects.push(Date.now()));
  sub.on('message', (_t, p) => recvAt.set(Number(p.toString()), Date.now()));
  let next = 1;
  const publishing = (async () => {
    const inflight = new Set<Promise<void>>();
    const deadline = Date.now() + 60_000;
    while (next <= N && Date.now() < deadline) {
      while (inflight.size < 5 && next <= N) {
        const seq = next++;
        const pr: Promise<void> = pub
          .publishAsync('dr/q2', String(seq), { qos: 2 })
          .then(() => {
            acked.push(seq);
            ackAt.set(seq, Date.now());
          })
          .catch(() => undefined)
          .finally(() => inflight.delete(pr));
        inflight.add(pr);
      }
      await Promise.race(inflight);
      await sleep(10);
    }
    await Promise.all(inflight);
  })();

  await until(() => acked.length >= 40, 20_000, 'first messages acknowledged');
  const termAt = Date.now();
  a.proc.kill('SIGTERM');

  // While a drains: readiness fails (503; 404 for HAProxy), a direct CONNECT is refused.
  await until(() => disconnects.length > 0, 10_000, 'subscriber disconnected by the drain');
  assert.equal(await httpStatus(aHealth, '/ready'), 503);
  assert.equal(await httpStatus(aHealth, '/ready/lb'), 404);
  const direct5 = await JsClient.connect(`mqtt://127.0.0.1:${a.port}`, { clientId: 'late-5', protocolVersion: 5 }).then(
    () => 'accepted',
    (e: Error) => e.message,
  );
  assert.match(direct5, /0x88|136|[Ss]erver unavailable|Server unavailable/i);
  const direct4 = await JsClient.connect(`mqtt://127.0.0.1:${a.port}`, { clientId: 'late-4', protocolVersion: 4 }).then(
    () => 'accepted',
    (e: Error) => e.message,
  );
  assert.match(direct4, /[Ss]erver unavailable|code 3\b|returnCode.?3/i);

  assert.equal(disconnects[0]!.reasonCode, 0x8b, 'DISCONNECT Server shutting down');
  assert.equal(disconnects[0]!.serverReference, `127.0.0.1:${bPort}`, 'Server Reference = b');

  await until(() => pubDisconnects.length > 0, 10_000, 'publisher disconnected by the drain');
  const gap = pubDisconnects[0]! - disconnects[0]!.at;
  assert.ok(gap >= 700, `second client left ${gap} ms after the first (rate 1/s)`);

  const exit = await a.proc.waitExit(30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, a.proc.describe());
  t.diagnostic(`node a drained and exited ${Date.now() - termAt} ms after SIGTERM`);

  await within(publishing, 70_000, 'publishing finished');
  assert.equal(acked.length, N, `every publish acknowledged (${acked.length}/${N})`);
  await until(() => received.length >= N, 20_000, `all messages received (${received.length}/${N})`).catch(() => undefined);
  const missing = acked.filter((s) => !received.includes(s));
  if (missing.length > 0) {
    t.diagnostic(`sub disconnect ${disconnects.map((d) => d.at - termAt)} connects ${subConnects.map((x) => x - termAt)}; pub disconnect ${pubDisconnects.map((x) => x - termAt)} connects ${pubConnects.map((x) => x - termAt)}`);
    t.diagnostic(`acks: ${acked.map((s) => `${s}@${ackAt.get(s)! - termAt}`).join(' ')}`);
    t.diagnostic(`recv: ${received.map((s) => `${s}@${recvAt.get(s)! - termAt}`).join(' ')}`);
  }
  assert.deepEqual(missing, [], 'acknowledged messages lost');
  assert.equal(new Set(received).size, received.length, `QoS 2 duplicates: ${received.length - new Set(received).size}`);
  const firsts = received.filter((s, k) => received.indexOf(s) === k);
  assert.deepEqual(firsts, [...firsts].sort((x, y) => x - y), 'order');

  const afterStatus = await readClusterStatus({ url: redisUrl }, 'skein:');
  assert.deepEqual(afterStatus.nodes.filter((n) => n.alive).map((n) => n.id), ['b']);
  assert.ok(b.proc.exit === undefined, 'b still running');
});
