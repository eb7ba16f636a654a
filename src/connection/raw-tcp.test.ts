/**
 * RawTcpServer / RawSocket (raw-tcp.ts) over real loopback sockets, against `net` clients: the
 * bindings are there on the Node the suite runs on; bytes arrive in order in Buffers of their own;
 * a write the socket buffer cannot take is queued, counted and followed by onDrain, and every byte
 * arrives; end() delivers what was queued before the FIN and closes after the peer's FIN; the
 * peer's FIN or reset closes the socket; destroy() closes at once; pause() stops reads;
 * maxConnections refuses the extra connection; listen errors carry the libuv code; close() waits
 * for open sockets. Then the TCP listener picks the layer its config names.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { onlyViewlessFrames, RawSocket, RawTcpServer, rawTcpSupported, rawTcpUnsupportedReason, type RawSocketOwner } from './raw-tcp.js';
import { READ_SLAB_BYTES } from './direct-read.js';
import { TcpListener } from '../listeners/tcp.js';
import { startTestBroker, RawClient } from '../testing/harness.js';
import { silentLogger } from '../log.js';

/** An owner that records everything. */
class Recorder implements RawSocketOwner {
  chunks: Buffer[] = [];
  errors: Error[] = [];
  drains = 0;
  closed = 0;
  private waiters: (() => void)[] = [];
  onData(chunk: Buffer, start: number, end: number): void {
    this.chunks.push(chunk.subarray(start, end));
    this.wake();
  }
  onError(err: Error): void {
    this.errors.push(err);
    this.wake();
  }
  onDrain(): void {
    this.drains++;
    this.wake();
  }
  onClosed(): void {
    this.closed++;
    this.wake();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  async until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 20);
      });
    }
  }
}

type Accepted = { socket: RawSocket; rec: Recorder };

async function rawServer(t: { after(fn: () => unknown): void }, maxConnections = 100) {
  const accepted: Accepted[] = [];
  const errors: Error[] = [];
  const server = new RawTcpServer({
    maxConnections,
    onConnection: (socket) => {
      const rec = new Recorder();
      socket.owner = rec;
      accepted.push({ socket, rec });
      socket.resume();
    },
    onError: (err) => errors.push(err),
  });
  const { port, host } = await server.listen(0, '127.0.0.1');
  t.after(async () => {
    for (const a of accepted) a.socket.destroy();
    await server.close();
  });
  const nth = async (i: number): Promise<Accepted> => {
    const end = Date.now() + 5000;
    while (accepted.length <= i) {
      if (Date.now() > end) throw new Error(`connection ${i} not accepted`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return accepted[i]!;
  };
  return { server, port, host, accepted, errors, nth };
}

async function connect(port: number): Promise<net.Socket> {
  const c = net.connect(port, '127.0.0.1');
  await once(c, 'connect');
  return c;
}

/** A client connected to a raw server that does not read yet, and the server's side of it. */
async function pausedPeer(t: { after(fn: () => unknown): void }): Promise<{ c: net.Socket } & Accepted> {
  const { port, nth } = await rawServer(t);
  const c = await connect(port);
  t.after(() => c.destroy());
  c.pause();
  return { c, ...(await nth(0)) };
}

function collect(c: net.Socket): { data: Buffer[]; ended: Promise<unknown> } {
  const data: Buffer[] = [];
  c.on('data', (d) => data.push(d));
  return { data, ended: once(c, 'end') };
}

describe('raw TCP sockets', () => {
  it('the bindings are there on this Node (otherwise the listener falls back to net)', () => {
    assert.equal(rawTcpSupported(), true, rawTcpUnsupportedReason());
  });

  it('listen on port 0 reports the bound port and host; the peer address is the client\'s', async (t) => {
    const { port, host, nth } = await rawServer(t);
    assert.ok(port > 0);
    assert.equal(host, '127.0.0.1');
    const c = await connect(port);
    t.after(() => c.destroy());
    const { socket } = await nth(0);
    assert.equal(socket.remoteAddress, '127.0.0.1');
    assert.equal(socket.remotePort, c.localPort);
  });

  it('reads arrive in order, each in a Buffer of its own (not overwritten by later reads of another socket)', async (t) => {
    const { port, nth } = await rawServer(t);
    const a = await connect(port);
    const b = await connect(port);
    t.after(() => {
      a.destroy();
      b.destroy();
    });
    const sa = await nth(0);
    const sb = await nth(1);
    a.write('first from a');
    await sa.rec.until(() => sa.rec.bytes.length >= 12, 'a');
    const kept = sa.rec.chunks[0]!;
    b.write('X'.repeat(5000));
    await sb.rec.until(() => sb.rec.bytes.length >= 5000, 'b');
    assert.equal(kept.toString(), 'first from a', 'a chunk kept is not overwritten');
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    a.write(big);
    await sa.rec.until(() => sa.rec.bytes.length >= 12 + big.length, 'a big');
    assert.ok(sa.rec.bytes.subarray(12).equals(big), 'every byte in order');
  });

  it('a write the peer does not read is queued: write() turns false, onDrain follows, every byte arrives', async (t) => {
    const { c, socket, rec } = await pausedPeer(t);
    const hash = createHash('sha256');
    let total = 0;
    let refused = false;
    for (let i = 0; i < 2000 && !refused; i++) {
      const chunk = Buffer.alloc(64 * 1024, i & 0xff);
      hash.update(chunk);
      total += chunk.length;
      refused = !socket.write(chunk);
    }
    assert.equal(refused, true, 'the socket refused more once the kernel buffers were full');
    assert.ok(socket.writableLength > 0, 'queued bytes are counted');
    const got = createHash('sha256');
    let n = 0;
    c.on('data', (d: Buffer) => {
      got.update(d);
      n += d.length;
    });
    c.resume();
    await rec.until(() => rec.drains === 1, 'onDrain');
    assert.equal(socket.writableLength, 0);
    await rec.until(() => n >= total, 'all bytes at the peer');
    assert.equal(got.digest('hex'), hash.digest('hex'));
    assert.deepEqual(rec.errors, []);
  });

  it('end(): what was queued arrives before the FIN, the socket closes once the peer ends too', async (t) => {
    const { c, socket, rec } = await pausedPeer(t);
    const payload = Buffer.alloc(4 * 1024 * 1024, 0x5a);
    socket.write(payload);
    socket.end();
    assert.equal(socket.write(Buffer.from('late')), false, 'no write after end()');
    const { data, ended } = collect(c);
    c.resume();
    await ended;
    assert.equal(Buffer.concat(data).length, payload.length, 'everything before the FIN');
    assert.equal(rec.closed, 0, 'still open: the peer has not ended');
    c.end();
    await rec.until(() => rec.closed === 1, 'closed after the peer FIN');
  });

  it('the peer\'s FIN: bytes before it arrive, then the socket closes by itself', async (t) => {
    const { port, nth } = await rawServer(t);
    const c = await connect(port);
    const closed = once(c, 'close');
    c.end('last words');
    const { rec } = await nth(0);
    await rec.until(() => rec.closed === 1, 'closed');
    assert.equal(rec.bytes.toString(), 'last words');
    assert.deepEqual(rec.errors, []);
    await closed;
  });

  it('a reset by the peer closes the socket; destroy() closes at once and writes after it are refused', async (t) => {
    const { port, nth } = await rawServer(t);
    const c = await connect(port);
    const { rec } = await nth(0);
    c.resetAndDestroy();
    await rec.until(() => rec.closed === 1, 'closed after a reset');
    const d = await connect(port);
    t.after(() => d.destroy());
    const second = await nth(1);
    second.socket.destroy();
    assert.equal(second.socket.destroyed, true);
    assert.equal(second.socket.write(Buffer.from('x')), false);
    second.socket.destroy();
    await second.rec.until(() => second.rec.closed === 1, 'closed after destroy');
    await once(d, 'close');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(second.rec.closed, 1, 'onClosed once');
  });

  it('pause() stops reads, resume() brings what came meanwhile', async (t) => {
    const { port, nth } = await rawServer(t);
    const c = await connect(port);
    t.after(() => c.destroy());
    const { socket, rec } = await nth(0);
    c.write('one');
    await rec.until(() => rec.bytes.length === 3, 'one');
    socket.pause();
    c.write('two');
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(rec.bytes.toString(), 'one', 'nothing read while paused');
    socket.resume();
    await rec.until(() => rec.bytes.length === 6, 'two');
    assert.equal(rec.bytes.toString(), 'onetwo');
  });

  it('maxConnections: a connection past it is closed as soon as accepted; room again after one closes', async (t) => {
    const { server, port, nth, accepted } = await rawServer(t, 1);
    const a = await connect(port);
    t.after(() => a.destroy());
    const first = await nth(0);
    const b = await connect(port);
    const bClosed = await Promise.race([once(b, 'close').then(() => true), new Promise((r) => setTimeout(() => r(false), 3000))]);
    assert.equal(bClosed, true, 'the second connection was closed');
    assert.equal(accepted.length, 1);
    assert.equal(server.count, 1);
    a.destroy();
    await first.rec.until(() => first.rec.closed === 1, 'first closed');
    assert.equal(server.count, 0);
    const c = await connect(port);
    t.after(() => c.destroy());
    await nth(1);
  });

  it('listen errors carry the libuv code; a host name is looked up; close() waits for open sockets', async (t) => {
    const { port } = await rawServer(t);
    const other = new RawTcpServer({ maxConnections: 10, onConnection: (s) => s.destroy(), onError: () => {} });
    await assert.rejects(other.listen(port, '127.0.0.1'), (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE' && /listen EADDRINUSE/.test(err.message));
    const byName = await other.listen(0, 'localhost');
    assert.ok(byName.host === '127.0.0.1' || byName.host === '::1', byName.host);
    const held: RawSocket[] = [];
    const third = new RawTcpServer({ maxConnections: 10, onConnection: (s) => held.push(s), onError: () => {} });
    const bound = await third.listen(0, '127.0.0.1');
    const c = await connect(bound.port);
    while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
    let closed = false;
    const closing = third.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(closed, false, 'close() waits while a socket is open');
    held[0]!.destroy();
    await closing;
    c.destroy();
    await other.close();
  });
});

describe('lent reads', () => {
  it('onlyViewlessFrames: four-byte acks, PINGREQ and DISCONNECT only; a partial last frame is allowed', () => {
    const ok = (bytes: number[]) => onlyViewlessFrames(Uint8Array.from(bytes), bytes.length);
    assert.equal(ok([0x40, 2, 0, 1]), true, 'PUBACK');
    assert.equal(ok([0x40, 2, 0, 1, 0x50, 2, 0, 2, 0x62, 2, 0, 3, 0x70, 2, 0, 4, 0xc0, 0, 0xe0, 0]), true, 'every kind');
    assert.equal(ok([0x40, 2, 0, 1, 0x40, 2]), true, 'a partial ack last (the framer copies it)');
    assert.equal(ok([0x40, 2, 0, 1, 0x30]), true, 'one byte of a next frame');
    assert.equal(ok([0x40, 3, 0, 1, 0]), false, 'a v5 PUBACK with a reason code');
    assert.equal(ok([0x40, 2, 0, 1, 0x30, 5, 0, 1, 0x74, 0x41, 0x42]), false, 'a PUBLISH after an ack');
    assert.equal(ok([0x10, 12]), false, 'CONNECT');
    assert.equal(ok([0xe0, 1, 0]), false, 'DISCONNECT with a reason code');
    assert.equal(ok([0x62, 2, 0, 1]), true, 'PUBREL');
    assert.equal(ok([0x60, 2, 0, 1]), false, 'PUBREL with wrong flags goes to a copy');
  });

  it('an owner that lends gets ack-only reads as views of the shared buffer, everything else copied; others always copies', async (t) => {
    const { port, nth } = await rawServer(t);
    const a = await connect(port);
    t.after(() => a.destroy());
    const { rec } = await nth(0);
    (rec as unknown as { lendsViewlessReads: boolean }).lendsViewlessReads = true;
    a.write(Buffer.from([0x40, 2, 0, 1, 0x40, 2, 0, 2]));
    await rec.until(() => rec.chunks.length === 1, 'ack read');
    assert.equal(rec.chunks[0]!.buffer.byteLength, 64 * 1024, 'lent: a view of the shared 64 KiB buffer');
    a.write(Buffer.from([0x30, 5, 0, 1, 0x74, 0x41, 0x42]));
    await rec.until(() => rec.chunks.length === 2, 'publish read');
    assert.notEqual(rec.chunks[1]!.buffer, rec.chunks[0]!.buffer, 'copied out of the shared buffer');
    assert.ok(rec.chunks[1]!.buffer.byteLength <= READ_SLAB_BYTES, 'into a read slab (direct-read.ts copyReadOut)');
    assert.deepEqual([...rec.chunks[1]!], [0x30, 5, 0, 1, 0x74, 0x41, 0x42]);
    const b = await connect(port);
    t.after(() => b.destroy());
    const other = await nth(1);
    b.write(Buffer.from([0x40, 2, 0, 1]));
    await other.rec.until(() => other.rec.chunks.length === 1, 'ack read, no lending');
    assert.notEqual(other.rec.chunks[0]!.buffer, rec.chunks[0]!.buffer, 'an owner that does not lend gets a copy');
    assert.deepEqual([...other.rec.chunks[0]!], [0x40, 2, 0, 1]);
  });
});

describe('TCP listener socket layers', () => {
  for (const layer of ['handle', 'net'] as const) {
    it(`socketLayer ${layer}: the listener uses it and serves CONNECT`, async (t) => {
      const tb = await startTestBroker();
      t.after(() => tb.stop());
      const logger = silentLogger();
      const listener = new TcpListener({ port: 0, host: '127.0.0.1', socketLayer: layer }, { broker: tb.node.broker, logger, enhancedAuth: new Map() }, logger);
      const { port } = await listener.listen();
      t.after(() => listener.stop());
      assert.equal(listener.layer, layer);
      const c = await RawClient.connect(port);
      t.after(() => c.destroy());
      const connack = await c.handshake({ clientId: `layer-${layer}` });
      assert.equal(connack.returnCode, 0);
      assert.equal(listener.connections.size, 1);
    });
  }
});
