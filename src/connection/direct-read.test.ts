/**
 * Direct reads (direct-read.ts) over real loopback sockets: they engage on a socket a server
 * accepted (on the Node the suite runs on; the fallback to 'data' events is for others), hand
 * every byte over in order and in memory of their own (a chunk kept by the consumer is not
 * overwritten by later reads of any socket; small reads sit side by side in slabs), stop and restart with pause()/resume(), still end
 * with 'end' on the peer's FIN, and leave TLS and other streams alone. Then a whole Connection on
 * a direct socket: queued messages' payloads, which are views into read chunks, stay intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import tls from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { copyRead, readDirect, READ_SLAB_BYTES, sharedReadBuffer } from './direct-read.js';
import { VIEW_PIN_SLACK } from '../codec/codec.js';
import { Connection } from './connection.js';
import { RawClient, startTestBroker } from '../testing/harness.js';
import { silentLogger } from '../log.js';
import { makeTestPki } from '../testing/certs.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Accepted = { socket: net.Socket; chunks: Buffer[]; direct: boolean };

/** A loopback server whose sockets read directly; resolves each accepted socket. */
async function directServer(t: { after(fn: () => unknown): void }) {
  const accepted: Accepted[] = [];
  let wake: (() => void) | undefined;
  const server = net.createServer((socket) => {
    const entry: Accepted = { socket, chunks: [], direct: false };
    entry.direct = readDirect(socket, function (this: net.Socket, chunk: Buffer) {
      assert.equal(this, socket, 'called with the socket as this');
      entry.chunks.push(chunk);
      wake?.();
    });
    accepted.push(entry);
    wake?.();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    // Hooks run in order: the server's sockets go first, or close() would wait for them.
    for (const e of accepted) e.socket.destroy();
    return new Promise((r) => server.close(r));
  });
  const port = (server.address() as net.AddressInfo).port;
  const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('timed out');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 20);
      });
    }
  };
  return { port, accepted, until };
}

async function connect(port: number, t: { after(fn: () => unknown): void }): Promise<net.Socket> {
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => {});
  await once(c, 'connect');
  t.after(() => c.destroy());
  return c;
}

test('an accepted TCP socket reads directly: all bytes in order, each chunk a Buffer of its own that later reads of other sockets do not overwrite', async (t) => {
  const { port, accepted, until } = await directServer(t);
  const a = await connect(port, t);
  const b = await connect(port, t);
  await until(() => accepted.length === 2);
  assert.ok(accepted.every((e) => e.direct), 'readDirect engaged (Node 20 has kBuffer/kBufferCb and useUserBuffer)');
  // Many small writes from both peers, alternating, so the shared read buffer is reused often.
  const expectA: Buffer[] = [];
  const expectB: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    const x = Buffer.from(`a${i};`.repeat(1 + (i % 7)));
    const y = Buffer.from(`B${i}|`.repeat(1 + (i % 5)));
    expectA.push(x);
    expectB.push(y);
    a.write(x);
    b.write(y);
    if (i % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  // And one larger than the shared buffer (64 KiB): it arrives in several reads.
  const big = Buffer.alloc(200_000, 7);
  a.write(big);
  expectA.push(big);
  const wantA = Buffer.concat(expectA);
  const wantB = Buffer.concat(expectB);
  const [ea, eb] = accepted[0]!.socket.remotePort === a.localPort ? [accepted[0]!, accepted[1]!] : [accepted[1]!, accepted[0]!];
  await until(() => Buffer.concat(ea.chunks).length >= wantA.length && Buffer.concat(eb.chunks).length >= wantB.length);
  // Kept chunks compared only now, after every read: none was a view of the shared buffer.
  assert.ok(Buffer.concat(ea.chunks).equals(wantA), 'socket a: every byte, in order, unchanged');
  assert.ok(Buffer.concat(eb.chunks).equals(wantB), 'socket b: every byte, in order, unchanged');
  assert.ok(ea.chunks.length > 3, `several reads (${ea.chunks.length})`);
  assertOwnMemory([...ea.chunks, ...eb.chunks]);
});

/** No chunk is a view of the shared read buffer, and no two chunks share a byte of memory
 *  (small reads share slabs, side by side). */
function assertOwnMemory(chunks: Buffer[]): void {
  const shared = sharedReadBuffer().buffer;
  const byBuffer = new Map<ArrayBufferLike, [number, number][]>();
  for (const c of chunks) {
    assert.notEqual(c.buffer, shared, 'not a view of the shared read buffer');
    const ranges = byBuffer.get(c.buffer) ?? [];
    ranges.push([c.byteOffset, c.byteOffset + c.length]);
    byBuffer.set(c.buffer, ranges);
  }
  for (const ranges of byBuffer.values()) {
    ranges.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i]![0] >= ranges[i - 1]![1], 'chunks of one slab do not overlap');
  }
}

test('copyRead: small reads side by side in slabs of READ_SLAB_BYTES (within the pin slack of kept payloads), larger ones in a Buffer of exactly their size', () => {
  const shared = sharedReadBuffer();
  const read = (n: number, fill: number): Buffer => {
    shared.fill(fill, 0, n);
    return copyRead(n);
  };
  assert.ok(READ_SLAB_BYTES <= VIEW_PIN_SLACK, 'a payload viewed in a slab is never copied for the slab (publish.ts)');
  const small: Buffer[] = [];
  for (let i = 0; i < 40; i++) small.push(read(90, i));
  // Each kept read still holds its own bytes after 39 later reads through the same shared buffer.
  small.forEach((c, i) => assert.ok(c.equals(Buffer.alloc(90, i)), `read ${i} intact`));
  for (const c of small) assert.equal(c.buffer.byteLength, READ_SLAB_BYTES);
  const slabs = new Set(small.map((c) => c.buffer));
  // 11 reads of 90 bytes fit a 1 KiB slab: 40 reads take 4 slabs (5 when the first read lands in
  // the end of one an earlier test began), not 40 ArrayBuffers.
  const perSlab = Math.floor(READ_SLAB_BYTES / 90);
  assert.ok(slabs.size <= Math.ceil(40 / perSlab) + 1, `${slabs.size} slabs for 40 reads`);
  assertOwnMemory(small);
  const big = read(READ_SLAB_BYTES / 2 + 1, 0xee);
  assert.equal(big.buffer.byteLength, READ_SLAB_BYTES / 2 + 1, 'a larger read: a Buffer of exactly its size');
  assert.ok(big.equals(Buffer.alloc(READ_SLAB_BYTES / 2 + 1, 0xee)));
  const after = read(10, 0x55);
  assert.ok(small[39]!.equals(Buffer.alloc(90, 39)) && after.equals(Buffer.alloc(10, 0x55)));
});

test('pause() stops direct reads (the peer is held back by TCP), resume() restarts them; the peer FIN still ends the socket', async (t) => {
  const { port, accepted, until } = await directServer(t);
  const c = await connect(port, t);
  await until(() => accepted.length === 1);
  const e = accepted[0]!;
  assert.ok(e.direct);
  c.write('first');
  await until(() => e.chunks.length > 0);
  e.socket.pause();
  c.write('while paused');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(Buffer.concat(e.chunks).toString(), 'first', 'nothing read while paused');
  const ended = once(e.socket, 'end');
  e.socket.resume();
  await until(() => Buffer.concat(e.chunks).toString() === 'firstwhile paused');
  c.end('last');
  await ended;
  assert.equal(Buffer.concat(e.chunks).toString(), 'firstwhile pausedlast', "'end' after every byte");
});

test('readDirect leaves other streams alone: a TLS socket and a plain Duplex keep their own reads', async (t) => {
  assert.equal(readDirect(new PassThrough(), () => assert.fail('no direct read')), false);
  const dir = mkdtempSync(join(tmpdir(), 'skein-direct-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makeTestPki(dir);
  let direct: boolean | undefined;
  const server = tls.createServer({ key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) }, (socket) => {
    direct = readDirect(socket, () => assert.fail('no direct read on TLS'));
    socket.on('data', (d) => socket.end(d));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise((r) => server.close(r)));
  const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', ca: readFileSync(pki.ca), servername: 'localhost' });
  t.after(() => c.destroy());
  await once(c, 'secureConnect');
  c.write('ping');
  const [echo] = (await once(c, 'data')) as [Buffer];
  assert.equal(direct, false);
  assert.equal(echo.toString(), 'ping', 'the TLS socket still reads through its stream');
});

test('a Connection on a direct socket: 2,000 QoS 1 messages published in many reads while the subscriber does not read are queued without pinning the reads and arrive with their own payloads and Correlation Data [MQTT-4.6.0-6] [MQTT-3.3.2-16]', async (t) => {
  const b = await startTestBroker({ limits: { maxQueuedMessages: 5000 } });
  t.after(() => b.stop());
  // Our own listener on the test broker, so the test can see the Connection's read path.
  const conns: Connection[] = [];
  const sockets: net.Socket[] = [];
  const logger = silentLogger();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.push(socket);
    conns.push(new Connection(socket, { broker: b.node.broker, logger, enhancedAuth: new Map() }, logger));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  const port = (server.address() as net.AddressInfo).port;

  const sub = await RawClient.connect(port, 5);
  t.after(() => sub.destroy());
  await sub.handshake({ clientId: 'direct-sub' });
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'direct/#', qos: 1 }] } as mqttPacket.ISubscribePacket);
  await sub.next('suback');
  const pub = await RawClient.connect(port, 5);
  t.after(() => pub.destroy());
  await pub.handshake({ clientId: 'direct-pub' });
  assert.ok(conns.length === 2 && conns.every((c) => c.directRead), 'both connections read directly');

  // The subscriber leaves its deliveries unacknowledged: past the in-flight window they queue,
  // holding their payloads, while the publisher's later reads reuse the shared read buffer.
  const N = 2000;
  const payload = (i: number) => Buffer.from(`message ${i} `.padEnd(20 + (i % 50), String.fromCharCode(97 + (i % 26))));
  for (let i = 0; i < N; i++) {
    // Correlation Data is kept as decoded (the payload may be copied on its own when queued).
    const properties = { correlationData: Buffer.from(`corr-${i}`) };
    pub.send({ cmd: 'publish', topic: `direct/${i % 3}`, payload: payload(i), qos: 1, messageId: (i % 65535) + 1, retain: false, dup: false, properties } as mqttPacket.IPublishPacket);
    if (i % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  let acked = 0;
  while (acked < N) if ((await pub.next('puback', 5000)).cmd === 'puback') acked++;
  // The queued payloads were copied out of the publisher's reads (publish.ts): none
  // pins more than VIEW_PIN_SLACK bytes beyond its own length.
  let queued = 0;
  b.node.broker.sessions.get('direct-sub')!.someQueued(({ message: { payload } }) => {
    queued++;
    assert.ok(payload.buffer.byteLength <= payload.length + VIEW_PIN_SLACK, `a ${payload.length}-byte payload pins ${payload.buffer.byteLength} bytes`);
    return false;
  });
  assert.ok(queued >= N / 4, `${queued} messages queued`);
  const got: string[] = [];
  const corr: string[] = [];
  while (got.length < N) {
    const p = (await sub.next('publish', 5000)) as mqttPacket.IPublishPacket;
    got.push(p.payload.toString());
    corr.push(String(p.properties?.correlationData));
    sub.sendBytes([0x40, 0x02, p.messageId! >> 8, p.messageId! & 0xff]);
  }
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => payload(i).toString()));
  assert.deepEqual(corr, Array.from({ length: N }, (_, i) => `corr-${i}`));
});

test('with queueQos0Messages, QoS 0 payloads queued for an offline session are copied out of the read too (pin at most VIEW_PIN_SLACK beyond their length)', async (t) => {
  const b = await startTestBroker({ mqtt: { queueQos0Messages: true } });
  t.after(() => b.stop());
  const sub = await RawClient.connect(b.port, 4);
  await sub.handshake({ clientId: 'q0-offline', clean: false });
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q0/#', qos: 0 }] } as mqttPacket.ISubscribePacket);
  await sub.next('suback');
  sub.destroy();
  const session = b.node.broker.sessions.get('q0-offline')!;
  const deadline = Date.now() + 5000;
  while (b.node.broker.targets.has('q0-offline') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const pub = await RawClient.connect(b.port, 4);
  t.after(() => pub.destroy());
  await pub.handshake({ clientId: 'q0-pub' });
  const N = 200;
  // One write of 200 PUBLISH packets: a read of several KiB, far above the slab size.
  pub.sendBytes(Buffer.concat(Array.from({ length: N }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'q0/t', payload: Buffer.from(`m${i}`), qos: 0, retain: false, dup: false } as mqttPacket.IPublishPacket))));
  while (session.queueLength < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(session.queueLength, N);
  let i = 0;
  session.someQueued(({ message: { payload } }) => {
    assert.equal(payload.toString(), `m${i++}`);
    assert.ok(payload.buffer.byteLength <= payload.length + VIEW_PIN_SLACK, `a ${payload.length}-byte payload pins ${payload.buffer.byteLength} bytes`);
    return false;
  });
  assert.equal(i, N);
});
