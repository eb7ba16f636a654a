/**
 * PROXY protocol: the parser from byte fixtures (v1/v2, TCP4/TCP6, LOCAL, malformed, truncated,
 * oversize), the listener's trust rules over real sockets, and end to end through a real HAProxy
 * with `send-proxy-v2`: the broker sees the client's own address and source port.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startHaproxy } from '../cluster/testing.js';
import { defaultConfig, SOCKET_LAYERS, type SkeinConfig, type SocketLayer } from '../config/schema.js';
import { createLogger } from '../log.js';
import { startNode, type SkeinNode } from '../node.js';
import { killAll, until, within } from '../interop/helpers.js';
import {
  looksLikeProxyHeader,
  parseProxyHeader,
  trustedProxiesProblem,
  trustMatcher,
  V2_MAX_LENGTH,
  V2_SIGNATURE,
} from './proxy-protocol.js';

after(() => killAll());

const ascii = (s: string) => Buffer.from(s, 'latin1');
/** MQTT 3.1.1 CONNECT, client id "pp", clean session, keep alive 60. */
const CONNECT = Buffer.from('100e00044d5154540402003c00027070', 'hex');

function v2(cmd: number, fam: number, body: Buffer): Buffer {
  const h = Buffer.alloc(16);
  V2_SIGNATURE.copy(h, 0);
  h[12] = 0x20 | cmd;
  h[13] = fam;
  h.writeUInt16BE(body.length, 14);
  return Buffer.concat([h, body]);
}

const TCP4_BODY = Buffer.from([192, 168, 1, 10, 10, 0, 0, 1, 0xc3, 0x50, 0x07, 0x5b]); // 192.168.1.10:50000 -> 10.0.0.1:1883
const TCP6_BODY = Buffer.concat([
  Buffer.from('20010db8000000000000000000000001', 'hex'),
  Buffer.from('20010db8000000000000000000000002', 'hex'),
  Buffer.from([0x30, 0x39, 0x07, 0x5b]), // 12345 -> 1883
]);

describe('PROXY protocol parser', () => {
  const valid: Array<[string, Buffer, object, number]> = [
    ['v1 TCP4', ascii('PROXY TCP4 192.168.1.10 10.0.0.1 50000 1883\r\n'), { version: 1, command: 'PROXY', protocol: 'TCP4', source: { address: '192.168.1.10', port: 50000 }, destination: { address: '10.0.0.1', port: 1883 } }, 45],
    ['v1 TCP6', ascii('PROXY TCP6 2001:db8::1 2001:db8::2 12345 1883\r\n'), { version: 1, command: 'PROXY', protocol: 'TCP6', source: { address: '2001:db8::1', port: 12345 }, destination: { address: '2001:db8::2', port: 1883 } }, 47],
    ['v1 UNKNOWN', ascii('PROXY UNKNOWN\r\n'), { version: 1, command: 'PROXY', protocol: 'UNKNOWN' }, 15],
    ['v2 TCP4', v2(1, 0x11, TCP4_BODY), { version: 2, command: 'PROXY', protocol: 'TCP4', source: { address: '192.168.1.10', port: 50000 }, destination: { address: '10.0.0.1', port: 1883 } }, 28],
    ['v2 TCP6', v2(1, 0x21, TCP6_BODY), { version: 2, command: 'PROXY', protocol: 'TCP6', source: { address: '2001:db8::1', port: 12345 }, destination: { address: '2001:db8::2', port: 1883 } }, 52],
    ['v2 LOCAL', v2(0, 0x00, Buffer.alloc(0)), { version: 2, command: 'LOCAL', protocol: 'UNSPEC' }, 16],
    // TLVs after the addresses are skipped (here an ALPN TLV, type 0x01).
    ['v2 TCP4 with TLV', v2(1, 0x11, Buffer.concat([TCP4_BODY, Buffer.from([0x01, 0x00, 0x04]), ascii('mqtt')])), { version: 2, command: 'PROXY', protocol: 'TCP4', source: { address: '192.168.1.10', port: 50000 }, destination: { address: '10.0.0.1', port: 1883 } }, 35],
  ];
  for (const [name, bytes, header, length] of valid) {
    it(`parses ${name}, leaving the bytes after it`, () => {
      const r = parseProxyHeader(Buffer.concat([bytes, CONNECT]));
      assert.equal(r.kind, 'header');
      if (r.kind !== 'header') return;
      assert.deepEqual(r.header, header);
      assert.equal(r.length, length);
      assert.equal(r.length, bytes.length);
      // Fed in every prefix: incomplete until the last byte of the header.
      for (let i = 0; i < bytes.length; i++) assert.equal(parseProxyHeader(bytes.subarray(0, i)).kind, 'incomplete', `${name}: prefix of ${i} bytes`);
    });
  }

  const bad: Array<[string, Buffer, RegExp]> = [
    ['MQTT CONNECT', CONNECT, /not a PROXY/],
    ['v1 wrong keyword', ascii('PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /not a PROXY/],
    ['v1 unknown protocol', ascii('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), /unknown protocol/],
    ['v1 bad address', ascii('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n'), /bad TCP4 address/],
    ['v1 IPv6 in TCP4', ascii('PROXY TCP4 ::1 ::1 1 2\r\n'), /bad TCP4 address/],
    ['v1 bad port', ascii('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), /bad port/],
    ['v1 leading-zero port', ascii('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'), /bad port/],
    ['v1 missing field', ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), /expected/],
    ['v1 double space', ascii('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), /expected|bad/],
    ['v1 LF only', ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), /non-printable/],
    ['v1 oversize (no CRLF in 107 bytes)', ascii('PROXY TCP6 ' + 'f'.repeat(200)), /longer than 107/],
    ['v2 version 1', (() => { const b = v2(1, 0x11, TCP4_BODY); b[12] = 0x11; return b; })(), /version 1/],
    ['v2 command 2', v2(2, 0x11, TCP4_BODY), /unknown command/],
    ['v2 bad family', v2(1, 0x41, TCP4_BODY), /unknown address family/],
    ['v2 TCP4 block too short', v2(1, 0x11, TCP4_BODY.subarray(0, 8)), /too short/],
    ['v2 TCP6 block too short', v2(1, 0x21, TCP4_BODY), /too short/],
    ['v2 oversize length', (() => { const b = v2(1, 0x11, TCP4_BODY); b.writeUInt16BE(V2_MAX_LENGTH - 15, 14); return b; })(), /longer than 536/],
    ['v2 broken signature', (() => { const b = v2(1, 0x11, TCP4_BODY); b[6] = 0x00; return b; })(), /not a PROXY/],
  ];
  for (const [name, bytes, reason] of bad) {
    it(`rejects ${name}`, () => {
      const r = parseProxyHeader(bytes);
      assert.equal(r.kind, 'invalid', JSON.stringify(r));
      if (r.kind === 'invalid') assert.match(r.reason, reason);
    });
  }

  it('a v2 header at the maximum size is accepted, truncated ones wait', () => {
    const body = Buffer.concat([TCP4_BODY, Buffer.from([0x04, 0x01, 0xf9]), Buffer.alloc(0x1f9)]); // NOOP TLV filling up to 536
    const b = v2(1, 0x11, body);
    assert.equal(b.length, V2_MAX_LENGTH);
    const r = parseProxyHeader(b);
    assert.equal(r.kind, 'header');
    if (r.kind === 'header') assert.equal(r.length, V2_MAX_LENGTH);
    assert.equal(parseProxyHeader(b.subarray(0, 100)).kind, 'incomplete');
    const over = v2(1, 0x11, Buffer.concat([body, Buffer.alloc(1)]));
    assert.equal(parseProxyHeader(over.subarray(0, 16)).kind, 'invalid', 'oversize known from the fixed part');
  });

  it('tells PROXY starts from MQTT', () => {
    assert.equal(looksLikeProxyHeader(ascii('P')), true);
    assert.equal(looksLikeProxyHeader(V2_SIGNATURE.subarray(0, 1)), true);
    assert.equal(looksLikeProxyHeader(CONNECT), false);
  });

  it('trusted proxies: addresses and CIDRs, IPv4-mapped peers, empty = all; bad entries reported', () => {
    const m = trustMatcher('127.0.0.1, 10.0.0.0/8,fd00::/8');
    assert.equal(m('127.0.0.1'), true);
    assert.equal(m('::ffff:127.0.0.1'), true);
    assert.equal(m('10.200.3.4'), true);
    assert.equal(m('fd12::1'), true);
    assert.equal(m('127.0.0.2'), false);
    assert.equal(m('192.168.0.1'), false);
    assert.equal(m('::1'), false);
    assert.equal(trustMatcher('')('203.0.113.9'), true);
    assert.equal(trustedProxiesProblem('127.0.0.1,10.0.0.0/8,::1'), undefined);
    assert.match(trustedProxiesProblem('10.0.0.0/33')!, /prefix length/);
    assert.match(trustedProxiesProblem('example.com')!, /not an address/);
  });
});

// ---------------------------------------------------------------------------------------------

async function startProxiedNode(trustedProxies: string, socketLayer: SocketLayer = 'handle'): Promise<SkeinNode> {
  const c: SkeinConfig = defaultConfig();
  c.nodeId = 'pp';
  c.listeners = [{ port: 0, host: '127.0.0.1', protocol: 'mqtt', proxyProtocol: true, trustedProxies, socketLayer }];
  c.store.type = 'memory';
  c.sys.intervalMs = 0;
  // The clients' addresses come from PROXY headers (not loopback): let them in anonymously.
  c.auth.allowAnonymous = true;
  return startNode(c, { logger: createLogger('silent') });
}

/** Sends `bytes` on a raw socket; resolves with what came back and whether the peer closed. */
function exchange(port: number, bytes: Buffer, waitMs: number): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      finish();
    });
    const timer = setTimeout(() => finish(), waitMs);
    let done = false;
    function finish() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    }
    s.once('connect', () => {
      if (bytes.length > 0) s.write(bytes);
    });
  });
}

const CONNACK_OK = '20020000';

// Both socket layers of the TCP listener read the preamble (src/listeners/tcp.ts).
for (const layer of SOCKET_LAYERS) describe(`listener with proxyProtocol (socketLayer ${layer})`, () => {
  it('a trusted peer: header then CONNECT in one write is served, with the address from the header', async (t) => {
    const node = await startProxiedNode('127.0.0.1', layer);
    t.after(() => node.stop());
    const port = node.addresses[0]!.port;
    const s = net.connect(port, '127.0.0.1');
    t.after(() => s.destroy());
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.concat([ascii('PROXY TCP4 198.51.100.7 10.0.0.1 40000 1883\r\n'), CONNECT]));
    await until(() => Buffer.concat(got).length >= 4, 5000, 'CONNACK');
    assert.equal(Buffer.concat(got).toString('hex'), CONNACK_OK);
    await until(() => node.broker.targets.has('pp'), 5000, 'client registered');
    assert.equal(node.broker.targets.get('pp')!.identity.remoteAddress, '198.51.100.7:40000');
  });

  it('a trusted peer: v2 header split over writes, then CONNECT', async (t) => {
    const node = await startProxiedNode('127.0.0.0/8', layer);
    t.after(() => node.stop());
    const s = net.connect(node.addresses[0]!.port, '127.0.0.1');
    t.after(() => s.destroy());
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    await new Promise((r) => s.once('connect', r));
    const h = v2(1, 0x21, TCP6_BODY);
    s.write(h.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 50));
    s.write(h.subarray(5, 20));
    await new Promise((r) => setTimeout(r, 50));
    s.write(Buffer.concat([h.subarray(20), CONNECT.subarray(0, 3)]));
    await new Promise((r) => setTimeout(r, 50));
    s.write(CONNECT.subarray(3));
    await until(() => Buffer.concat(got).length >= 4, 5000, 'CONNACK');
    assert.equal(Buffer.concat(got).toString('hex'), CONNACK_OK);
    await until(() => node.broker.targets.has('pp'), 5000, 'client registered');
    assert.equal(node.broker.targets.get('pp')!.identity.remoteAddress, '2001:db8::1:12345');
  });

  it('a trusted peer without a header, or with a malformed one, is closed without CONNACK', async (t) => {
    const node = await startProxiedNode('127.0.0.1', layer);
    t.after(() => node.stop());
    const port = node.addresses[0]!.port;
    const noHeader = await exchange(port, CONNECT, 5000);
    assert.equal(noHeader.closed, true);
    assert.equal(noHeader.data.length, 0);
    const malformed = await exchange(port, Buffer.concat([ascii('PROXY TCP4 1.2.3.4 nope 1 2\r\n'), CONNECT]), 5000);
    assert.equal(malformed.closed, true);
    assert.equal(malformed.data.length, 0);
    assert.equal(node.broker.targets.size, 0);
  });

  it('a trusted peer that sends no complete header in time is closed', async (t) => {
    const node = await startProxiedNode('127.0.0.1', layer);
    t.after(() => node.stop());
    const started = Date.now();
    const r = await exchange(node.addresses[0]!.port, ascii('PROXY TCP4 1.2.3.4'), 8000);
    assert.equal(r.closed, true);
    const took = Date.now() - started;
    assert.ok(took >= 2500 && took < 7000, `closed after ${took} ms`);
  });

  it('an untrusted peer: a PROXY header is refused, plain MQTT is served with the socket address', async (t) => {
    const node = await startProxiedNode('10.0.0.0/8', layer);
    t.after(() => node.stop());
    const port = node.addresses[0]!.port;
    const spoof = await exchange(port, Buffer.concat([ascii('PROXY TCP4 10.1.1.1 10.0.0.1 1 1883\r\n'), CONNECT]), 5000);
    assert.equal(spoof.closed, true);
    assert.equal(spoof.data.length, 0);
    const s = net.connect(port, '127.0.0.1');
    t.after(() => s.destroy());
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    await new Promise((r) => s.once('connect', r));
    s.write(CONNECT);
    await until(() => Buffer.concat(got).length >= 4, 5000, 'CONNACK');
    assert.equal(Buffer.concat(got).toString('hex'), CONNACK_OK);
    await until(() => node.broker.targets.has('pp'), 5000, 'client registered');
    assert.equal(node.broker.targets.get('pp')!.identity.remoteAddress, `127.0.0.1:${s.localPort}`);
  });
});

describe('PROXY protocol through a real HAProxy', () => {
  it('send-proxy-v2: the broker sees the client address and source port, not HAProxy\'s', { timeout: 60_000 }, async (t) => {
    const node = await startProxiedNode('127.0.0.1');
    t.after(() => node.stop());
    const lb = await startHaproxy([{ name: 'mqtt', servers: [{ name: 'a', port: node.addresses[0]!.port }] }], { sendProxy: 'v2' });
    t.after(() => lb.proc.kill('SIGTERM'));
    const client = mqtt.connect(`mqtt://127.0.0.1:${lb.ports.mqtt}`, { clientId: 'through-lb', protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    t.after(() => client.end(true));
    client.on('error', () => undefined);
    await within(new Promise<void>((resolve) => client.once('connect', () => resolve())), 10_000, 'connect through haproxy');
    const sock = (client as unknown as { stream: net.Socket }).stream;
    const clientPort = sock.localPort!;
    await until(() => node.broker.targets.has('through-lb'), 5000, 'client registered');
    const seen = node.broker.targets.get('through-lb')!.identity.remoteAddress;
    assert.equal(seen, `127.0.0.1:${clientPort}`);
    // And it works as MQTT: a round trip through the proxy.
    await client.subscribeAsync('pp/t', { qos: 1 });
    const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
    await client.publishAsync('pp/t', 'hello', { qos: 1 });
    assert.equal(await within(got, 5000, 'message'), 'hello');
  });
});
