/**
 * Listeners over real sockets: mqtts (TLS, mutual TLS, certificate username), ws / wss
 * (MQTT.js), certificate reload, with certificates made by `openssl` in a temp dir.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { WebSocket } from 'ws';
import mqttPacket from 'mqtt-packet';
import { allowAll, type Authorizer, type ConnectCredentials } from '../auth/types.js';
import { configFromObject } from '../config/load.js';
import { createLogger } from '../log.js';
import { startNode, type SkeinNode } from '../node.js';
import { makeTestPki, type TestPki } from '../testing/certs.js';
import { JsClient, endAllJs, killAll, runProc, startProc, tempDir, until, within } from '../interop/helpers.js';
import { chooseSubprotocol } from './websocket.js';
import type { Channel } from '../channel/channel.js';

let pki: TestPki;
let tmp: { path: string; remove(): void };
const nodes: SkeinNode[] = [];

before(() => {
  tmp = tempDir('skein-tls-');
  pki = makeTestPki(tmp.path);
});
after(async () => {
  await endAllJs();
  await killAll();
  await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  tmp.remove();
});

async function broker(listeners: unknown[], authorizer?: Authorizer): Promise<SkeinNode> {
  const config = configFromObject({
    nodeId: 'test',
    listeners,
    store: { type: 'memory' },
    sys: { interval: 0 },
    logLevel: (process.env.SKEIN_TEST_LOG as string) ?? 'silent',
  });
  const node = await startNode(config, { logger: createLogger(config.logLevel), authorizer });
  nodes.push(node);
  return node;
}

function recordingAuthorizer(): { authorizer: Authorizer; seen: ConnectCredentials[] } {
  const seen: ConnectCredentials[] = [];
  return {
    seen,
    authorizer: {
      ...allowAll,
      authenticate: (c) => {
        seen.push(c);
        return { reasonCode: 0 };
      },
    },
  };
}

/** TLS handshake (and a little reading): resolves 'ok' with the server certificate, or the error. */
type Handshake = { ok: true; fingerprint: string; socket: tls.TLSSocket; first: Buffer } | { ok: false; error: Error };
function handshake(port: number, opts: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...opts });
    let settled = false;
    const done = (r: Handshake) => {
      if (settled) return;
      settled = true;
      resolve(r);
    };
    socket.on('error', (error) => done({ ok: false, error }));
    socket.on('close', () => done({ ok: false, error: new Error('closed') }));
    socket.on('data', () => undefined);
    socket.on('secureConnect', () => {
      // TLS 1.3: the server checks the client certificate after the client's handshake is done;
      // its alert comes a moment later. Send a CONNECT to provoke it and wait for an answer.
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'hs', clean: true, keepalive: 10 }));
      socket.once('data', (first: Buffer) => done({ ok: true, fingerprint: socket.getPeerX509Certificate()!.fingerprint256, socket, first }));
    });
    setTimeout(() => done({ ok: false, error: new Error('handshake timeout') }), 5000).unref();
  });
}

const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

describe('mqtts listener', () => {
  test('mosquitto_pub --cafile publishes to a mosquitto_sub over TLS', async () => {
    const node = await broker([
      { port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert: pki.serverCert, key: pki.serverKey } },
      { port: 0, host: '127.0.0.1' },
    ]);
    const port = node.addresses[0]!.port;
    const sub = startProc('mosquitto_sub', ['--cafile', pki.ca, '-h', '127.0.0.1', '-p', String(port), '-i', 'tls-sub', '-t', 'tls/test', '-C', '1', '-q', '1']);
    await until(() => ((node.broker.targets.get('tls-sub') as Channel | undefined)?.session?.subscriptions.size ?? 0) > 0, 10_000, 'mosquitto_sub subscribed');
    const pub = await runProc('mosquitto_pub', ['--cafile', pki.ca, '-h', '127.0.0.1', '-p', String(port), '-t', 'tls/test', '-m', 'over tls', '-q', '1']);
    assert.equal(pub.exit?.code, 0, pub.describe());
    const exit = await within(sub.exited, 10_000, 'mosquitto_sub exit');
    assert.equal(exit.code, 0, sub.describe());
    assert.equal(sub.stdout.trim(), 'over tls');
  });

  test('a client that does not trust the server certificate fails', async () => {
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert: pki.serverCert, key: pki.serverKey } }]);
    const r = await handshake(node.addresses[0]!.port, { ca: readFileSync(join(pki.dir, 'otherca.pem')) });
    assert.equal(r.ok, false);
  });

  test('TLS 1.3 minimum refuses a TLS 1.2 client', async () => {
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert: pki.serverCert, key: pki.serverKey, minVersion: 'TLSv1.3' } }]);
    const port = node.addresses[0]!.port;
    const old = await handshake(port, { ca: readFileSync(pki.ca), maxVersion: 'TLSv1.2' });
    assert.equal(old.ok, false);
    const ok = await handshake(port, { ca: readFileSync(pki.ca) });
    assert.equal(ok.ok, true);
    if (ok.ok) ok.socket.destroy();
  });
});

describe('mutual TLS', () => {
  let node: SkeinNode;
  let port: number;
  let seen: ConnectCredentials[];
  before(async () => {
    const r = recordingAuthorizer();
    seen = r.seen;
    node = await broker(
      [{ port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requireCertificate: true, useIdentityAsUsername: true } }],
      r.authorizer,
    );
    port = node.addresses[0]!.port;
  });

  test('a client with a certificate from the CA connects; its CN is the username', async () => {
    const c = await JsClient.connect(`mqtts://127.0.0.1:${port}`, {
      clientId: 'mtls-alice',
      username: 'bob',
      password: 'ignored',
      protocolVersion: 5,
      ca: readFileSync(pki.ca),
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    });
    const cred = seen.find((s) => s.clientId === 'mtls-alice');
    assert.equal(cred?.username, 'alice');
    assert.equal((node.broker.targets.get('mtls-alice') as Channel | undefined)?.session?.record.username, 'alice');
    await c.subscribe('m/#', 1);
    await c.publish('m/x', 'hi', 1);
    await c.waitMessage('m/x');
    await c.end();
  });

  test('a client with a certificate from another CA fails the handshake', async () => {
    const r = await handshake(port, { ca: readFileSync(pki.ca), cert: readFileSync(pki.otherClientCert), key: readFileSync(pki.otherClientKey) });
    assert.equal(r.ok, false, 'handshake must fail');
  });

  test('a client without a certificate fails the handshake', async () => {
    const r = await handshake(port, { ca: readFileSync(pki.ca) });
    assert.equal(r.ok, false, 'handshake must fail');
  });

  test('useSubjectAsUsername gives the RFC 2253 subject; no certificate = Not authorized', async () => {
    const n = await broker([
      { port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, useSubjectAsUsername: true } },
    ]);
    const p = n.addresses[0]!.port;
    const c = await JsClient.connect(`mqtts://127.0.0.1:${p}`, {
      clientId: 'subj',
      ca: readFileSync(pki.ca),
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    });
    assert.equal((n.broker.targets.get('subj') as Channel | undefined)?.username, 'CN=alice,OU=devices,O=Skein tests');
    await c.end();
    // requireCertificate is off: the handshake succeeds without a certificate, CONNECT is refused.
    const r = await handshake(p, { ca: readFileSync(pki.ca) });
    assert.equal(r.ok, true);
    if (r.ok) {
      const connack = await new Promise<mqttPacket.Packet>((resolve) => {
        const parser = mqttPacket.parser({ protocolVersion: 4 });
        parser.on('packet', resolve);
        parser.parse(r.first);
      });
      assert.equal(connack.cmd, 'connack');
      assert.equal((connack as mqttPacket.IConnackPacket).returnCode, 5); // 3.1.1 Not authorized
      r.socket.destroy();
    }
    assert.equal(n.broker.targets.has('hs'), false);
  });

  test('no certificate with useIdentityAsUsername: CONNACK Not authorized (v5 0x87)', async () => {
    const n = await broker([
      { port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, useIdentityAsUsername: true } },
    ]);
    await assert.rejects(
      JsClient.connect(`mqtts://127.0.0.1:${n.addresses[0]!.port}`, { clientId: 'nocert', protocolVersion: 5, ca: readFileSync(pki.ca) }),
      (err: Error & { code?: number }) => err.code === 0x87 || /not authorized/i.test(err.message),
    );
  });
});

describe('WebSocket listeners', () => {
  test('MQTT.js over ws:// and wss:// exchange messages with a TCP client', async () => {
    const node = await broker([
      { port: 0, host: '127.0.0.1' },
      { port: 0, host: '127.0.0.1', protocol: 'ws' },
      { port: 0, host: '127.0.0.1', protocol: 'wss', tls: { cert: pki.serverCert, key: pki.serverKey } },
    ]);
    const [tcp, ws, wss] = node.addresses.map((a) => a.port);
    const t = await JsClient.connect(`mqtt://127.0.0.1:${tcp}`, { clientId: 'ws-tcp' });
    const w = await JsClient.connect(`ws://127.0.0.1:${ws}/mqtt`, { clientId: 'ws-plain' });
    const s = await JsClient.connect(`wss://127.0.0.1:${wss}/mqtt`, { clientId: 'ws-secure', protocolVersion: 5, ca: readFileSync(pki.ca), rejectUnauthorized: true });
    await t.subscribe('from/#', 1);
    await w.subscribe('to/#', 1);
    await s.subscribe('to/#', 2);
    await w.publish('from/ws', 'plain', 1);
    await s.publish('from/wss', 'secure', 2);
    await t.waitMessage('from/ws', 5000, 'plain');
    await t.waitMessage('from/wss', 5000, 'secure');
    await t.publish('to/all', 'x'.repeat(70_000), 1); // spans WebSocket frames / TCP segments
    await w.waitMessage('to/all');
    await s.waitMessage('to/all');
    await Promise.all([t.end(), w.end(), s.end()]);
  });

  test('subprotocols: mqtt and mqttv3.1 accepted, others refused; other paths 404', async () => {
    assert.equal(chooseSubprotocol(new Set(['mqttv3.1', 'mqtt'])), 'mqtt');
    assert.equal(chooseSubprotocol(new Set(['mqttv3.1'])), 'mqttv3.1');
    assert.equal(chooseSubprotocol(new Set(['chat'])), false);
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'ws' }]);
    const port = node.addresses[0]!.port;
    const open = (path: string, protocol: string) =>
      new Promise<string>((resolve) => {
        const s = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocol);
        s.on('open', () => {
          resolve(`open:${s.protocol}`);
          s.close();
        });
        s.on('error', (e) => resolve(`error:${e.message}`));
      });
    assert.equal(await open('/mqtt', 'mqttv3.1'), 'open:mqttv3.1');
    assert.equal(await open('/mqtt', 'mqtt'), 'open:mqtt');
    assert.match(await open('/mqtt', 'chat'), /^error:.*400/);
    assert.match(await open('/other', 'mqtt'), /^error:.*404/);
  });

  test('a WebSocket message larger than maxPacketSize closes the connection', async () => {
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'ws' }]);
    const s = new WebSocket(`ws://127.0.0.1:${node.addresses[0]!.port}/mqtt`, 'mqtt');
    await new Promise((r) => s.on('open', r));
    const closed = new Promise<number>((r) => s.on('close', (code) => r(code)));
    s.on('error', () => undefined);
    s.send(Buffer.alloc(node.broker.options.maxPacketSize + 4096));
    assert.equal(await within(closed, 5000, 'close'), 1009);
  });
});

describe('certificate reload', () => {
  test('reloadTls() serves the new certificate to new handshakes; open connections stay', async () => {
    const cert = join(tmp.path, 'live.pem');
    const key = join(tmp.path, 'live.key');
    copyFileSync(pki.serverCert, cert);
    copyFileSync(pki.serverKey, key);
    const node = await broker([
      { port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert, key } },
      { port: 0, host: '127.0.0.1', protocol: 'wss', tls: { cert, key } },
    ]);
    const [port, wssPort] = node.addresses.map((a) => a.port) as [number, number];
    const ca = readFileSync(pki.ca);
    const before = await handshake(port, { ca });
    assert.ok(before.ok);
    if (before.ok) {
      assert.equal(before.fingerprint, fingerprint(pki.serverCert));
      before.socket.destroy();
    }
    const open = await JsClient.connect(`mqtts://127.0.0.1:${port}`, { clientId: 'reload-open', ca });

    copyFileSync(pki.server2Cert, cert);
    copyFileSync(pki.server2Key, key);
    assert.deepEqual(node.reloadTls(), []);

    const after1 = await handshake(port, { ca });
    assert.ok(after1.ok);
    if (after1.ok) {
      assert.equal(after1.fingerprint, fingerprint(pki.server2Cert));
      after1.socket.destroy();
    }
    const afterWss = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: wssPort, ca }, () => {
        resolve(s.getPeerX509Certificate()!.fingerprint256);
        s.destroy();
      });
      s.on('error', reject);
    });
    assert.equal(afterWss, fingerprint(pki.server2Cert));
    // The connection made before the reload still works.
    await open.subscribe('r/#', 1);
    await open.publish('r/1', 'still here', 1);
    await open.waitMessage('r/1');
    await open.end();

    // A reload that cannot read a file reports it and keeps the current certificate.
    copyFileSync(pki.serverKey, key); // key no longer matches the certificate
    const failures = node.reloadTls();
    assert.equal(failures.length, 2);
    const again = await handshake(port, { ca });
    assert.ok(again.ok);
    if (again.ok) {
      assert.equal(again.fingerprint, fingerprint(pki.server2Cert));
      again.socket.destroy();
    }
  });
});

describe('listener configuration', () => {
  test('default ports by protocol, and TLS problems named by key', () => {
    const c = configFromObject({
      listeners: [{ protocol: 'mqtts', tls: { cert: 'a', key: 'b' } }, { protocol: 'ws' }, { protocol: 'wss', tls: { cert: 'a', key: 'b' } }, {}],
    });
    assert.deepEqual(
      c.listeners.map((l) => l.port),
      [8883, 8083, 8084, 1883],
    );
    assert.equal(c.listeners[1]!.path, '/mqtt');
    assert.throws(() => configFromObject({ listeners: [{ protocol: 'mqtts' }] }), /listeners\[0\]: protocol mqtts needs tls.cert and tls.key/);
    assert.throws(() => configFromObject({ listeners: [{ protocol: 'mqtt', tls: { cert: 'a' } }] }), /listeners\[0\]: tls.cert is set but protocol mqtt has no TLS/);
    assert.throws(
      () => configFromObject({ listeners: [{ protocol: 'mqtts', tls: { cert: 'a', key: 'b', requireCertificate: true } }] }),
      /tls.requireCertificate needs tls.ca/,
    );
    assert.throws(() => configFromObject({ listeners: [{ protocol: 'mqtts', tls: { cert: 'a', key: 'b', minVersion: 'TLSv1.1' } }] }), /minVersion/);
    // socketLayer is a plain TCP setting; on a TLS or WebSocket listener `net` is refused by name.
    for (const protocol of ['ws', 'mqtts'] as const) {
      const tls = protocol === 'mqtts' ? { cert: 'a', key: 'b' } : {};
      assert.throws(() => configFromObject({ listeners: [{ protocol, tls, socketLayer: 'net' }] }), new RegExp(`listeners\\[0\\]: socketLayer applies to protocol mqtt only \\(${protocol} listeners`));
      assert.equal(configFromObject({ listeners: [{ protocol, tls }] }).listeners[0]!.socketLayer, 'handle');
    }
    assert.equal(configFromObject({ listeners: [{ protocol: 'mqtt', socketLayer: 'net' }] }).listeners[0]!.socketLayer, 'net');
  });

  test('a missing certificate file fails the start naming the key', async () => {
    await assert.rejects(
      broker([{ port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: { cert: join(tmp.path, 'nope.pem'), key: pki.serverKey } }]),
      /listeners\[0\]\.tls\.cert: cannot read .*nope\.pem/,
    );
  });
});
