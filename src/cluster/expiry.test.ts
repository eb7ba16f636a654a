/**
 * Session expiry of a dead node's sessions (design notes §2, invariant 5; MQTT-3.1.2-23,
 * MQTT-4.1.0-2): persistent v5 sessions with Session Expiry 2 s on node a, a SIGKILLed. One
 * resumes through node b before the expiry (session present, the message queued meanwhile is
 * delivered); the others are gone after it: clean start 0 gives session present 0 and nothing
 * queued arrives.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { JsClient, endAllJs, killAll, sleep } from '../interop/helpers.js';
import { startRedis } from '../testing/redis.js';
import { startClusterNode } from './testing.js';

after(async () => {
  await endAllJs();
  await killAll();
});

test('expiry: sessions of a killed node expire on time, and resume before that', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const [a, b] = await Promise.all([startClusterNode('a', redisUrl), startClusterNode('b', redisUrl)]);
  const url = (n: { port: number }) => `mqtt://127.0.0.1:${n.port}`;
  const inspect = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await inspect.connect();
  t.after(() => inspect.disconnect());

  const opts = (clientId: string) => ({ clientId, protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 2 }, keepalive: 60 });
  // Connected when a dies: expiry counts from the death of the connection.
  const early = await JsClient.connect(url(a), opts('ex-early'));
  const gone = await JsClient.connect(url(a), opts('ex-gone'));
  // Disconnected normally just before: its expiry timer ran on a, and must go on elsewhere.
  const offline = await JsClient.connect(url(a), opts('ex-offline'));
  for (const x of [early, gone, offline]) await x.subscribe(`ex/${x.client.options.clientId}`, 1);
  await offline.end();
  await sleep(200);

  const killedAt = Date.now();
  a.proc.kill('SIGKILL');
  await a.proc.waitExit(5000);
  for (const x of [early, gone]) x.client.end(true);

  // Messages queued for each session while it is offline.
  const pub = await JsClient.connect(url(b), { clientId: 'ex-pub', protocolVersion: 5 });
  for (const id of ['ex-early', 'ex-gone', 'ex-offline']) await pub.publish(`ex/${id}`, `for ${id}`, 1);

  // Before the expiry: present, and the queued message arrives.
  await sleep(Math.max(0, killedAt + 1000 - Date.now()));
  const back = await JsClient.connect(url(b), opts('ex-early'));
  assert.equal(back.connack?.sessionPresent, true, 'resumed before the expiry: session present');
  await back.waitMessage('ex/ex-early', 5000, 'for ex-early');

  // After the expiry (2 s, counted at the latest from when a was declared dead: TTL 1.5 s + a
  // heartbeat), the others are gone from the store and cannot be resumed.
  const key = (id: string) => `skein:{c:${id}}:s`;
  const deadline = killedAt + 6000;
  while (Date.now() < deadline && ((await inspect.exists(key('ex-gone'))) || (await inspect.exists(key('ex-offline'))))) await sleep(100);
  const goneAfter = Date.now() - killedAt;
  t.diagnostic(`expired sessions removed ${goneAfter} ms after the kill`);
  assert.equal(await inspect.exists(key('ex-gone')), 0, 'ex-gone removed from the store after its expiry');
  assert.equal(await inspect.exists(key('ex-offline')), 0, 'ex-offline removed from the store after its expiry');
  assert.ok(goneAfter >= 1900, `not before the expiry (${goneAfter} ms)`);
  for (const id of ['ex-gone', 'ex-offline']) {
    const x = await JsClient.connect(url(b), opts(id));
    assert.equal(x.connack?.sessionPresent, false, `${id}: session present 0 after the expiry`);
    await sleep(500);
    assert.deepEqual(x.messages, [], `${id}: nothing queued survives the expiry`);
    await x.end();
  }
  // The resumed one is untouched.
  assert.equal(await inspect.exists(key('ex-early')), 1, 'the resumed session still exists');
  await Promise.all([back.end(), pub.end()]);
});
