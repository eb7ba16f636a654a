/**
 * Certificate revocation on mutual TLS listeners (`listeners[].tls.crl`): a CRL made with
 * `openssl ca` (src/testing/certs.ts) revokes one client certificate of the CA; a plain node:tls
 * handshake with it fails, one with another certificate of the same CA succeeds (mqtts and wss),
 * and a reload that replaces the CRL file applies to new handshakes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import mqttPacket from 'mqtt-packet';
import { allowAll } from '../auth/types.js';
import { configFromObject } from '../config/load.js';
import { createLogger } from '../log.js';
import { startNode, type SkeinNode } from '../node.js';
import { makeTestPki, makeTestRevocation, type TestPki, type TestRevocation } from '../testing/certs.js';
import { tempDir } from '../interop/helpers.js';

let pki: TestPki;
let rev: TestRevocation;
let tmp: { path: string; remove(): void };
const nodes: SkeinNode[] = [];

before(() => {
  tmp = tempDir('skein-crl-');
  pki = makeTestPki(tmp.path);
  rev = makeTestRevocation(pki);
});
after(async () => {
  await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  tmp.remove();
});

/** Debug log lines of the brokers (the listener logs why a handshake failed). */
const logLines: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logLines.push(...chunk.toString().split('\n').filter((l) => l.length > 0));
    cb();
  },
});

async function broker(listeners: unknown[]): Promise<SkeinNode> {
  const config = configFromObject({
    nodeId: 'test',
    listeners,
    store: { type: 'memory' },
    sys: { interval: 0 },
    logLevel: 'debug',
  });
  const node = await startNode(config, { logger: createLogger('debug', { destination: sink }), authorizer: allowAll });
  nodes.push(node);
  return node;
}

type Outcome = { ok: true; first: Buffer } | { ok: false; error: string };

/**
 * A TLS handshake with a client certificate, then an MQTT CONNECT: 'ok' once the broker answers
 * (CONNACK bytes), else the error. In TLS 1.3 the server checks the client certificate after
 * the client's side of the handshake is done, so only an answer (or its absence) tells.
 */
function tryClient(port: number, cert: string, key: string, extra: tls.ConnectionOptions = {}, preamble?: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(pki.ca), cert: readFileSync(cert), key: readFileSync(key), ...extra });
    let settled = false;
    const done = (r: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    socket.on('error', (e) => done({ ok: false, error: e.message }));
    socket.on('close', () => done({ ok: false, error: 'closed' }));
    socket.on('secureConnect', () => {
      if (preamble) socket.write(preamble);
      else socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'crl', clean: true, keepalive: 10 }));
      socket.once('data', (first: Buffer) => done({ ok: true, first }));
    });
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), 5000);
  });
}

const mtls = (crl?: string) => ({ cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requireCertificate: true, ...(crl ? { crl } : {}) });

describe('certificate revocation list', () => {
  test('the CRL lists the revoked certificate (openssl ca)', () => {
    const crl = readFileSync(rev.crl, 'utf8');
    assert.match(crl, /-----BEGIN X509 CRL-----/);
    // The revoked certificate's serial is in the CRL; the good one's is not.
    const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber.toUpperCase();
    const text = execFileSync('openssl', ['crl', '-in', rev.crl, '-noout', '-text'], { encoding: 'utf8' }).toUpperCase().replace(/:/g, '');
    assert.ok(text.includes(serialOf(rev.revokedCert)), `revoked serial missing from the CRL:\n${text}`);
    assert.ok(!text.includes(serialOf(rev.goodCert)), 'the good certificate must not be listed');
  });

  test('mqtts: the revoked client certificate fails the handshake; another one of the CA connects', async () => {
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: mtls(rev.crl) }]);
    const port = node.addresses[0]!.port;
    const bad = await tryClient(port, rev.revokedCert, rev.revokedKey);
    assert.equal(bad.ok, false, 'revoked certificate must be refused');
    const bad12 = await tryClient(port, rev.revokedCert, rev.revokedKey, { maxVersion: 'TLSv1.2' });
    assert.equal(bad12.ok, false, 'revoked certificate must be refused (TLS 1.2)');
    // The broker says why: OpenSSL's CERT_REVOKED (not some other verification error).
    const failures = logLines.filter((l) => l.includes('TLS handshake failed'));
    assert.ok(failures.length >= 2, `handshake failures logged: ${failures.length}`);
    for (const f of failures) assert.equal((JSON.parse(f) as { certificateError?: string }).certificateError, 'CERT_REVOKED', f);
    const good = await tryClient(port, rev.goodCert, rev.goodKey);
    assert.equal(good.ok, true, `good certificate refused: ${good.ok ? '' : good.error}`);
    if (good.ok) assert.equal(good.first[0], 0x20, 'CONNACK');
    const alice = await tryClient(port, pki.clientCert, pki.clientKey);
    assert.equal(alice.ok, true);
  });

  test('without the CRL the same certificate is accepted (the refusal comes from the CRL)', async () => {
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: mtls() }]);
    const r = await tryClient(node.addresses[0]!.port, rev.revokedCert, rev.revokedKey);
    assert.equal(r.ok, true, r.ok ? '' : r.error);
  });

  test('wss: the revoked client certificate fails the handshake; the good one gets an HTTP answer', async () => {
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'wss', tls: mtls(rev.crl) }]);
    const port = node.addresses[0]!.port;
    const get = Buffer.from('GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    const bad = await tryClient(port, rev.revokedCert, rev.revokedKey, {}, get);
    assert.equal(bad.ok, false, 'revoked certificate must be refused');
    const good = await tryClient(port, rev.goodCert, rev.goodKey, {}, get);
    assert.equal(good.ok, true, good.ok ? '' : good.error);
    if (good.ok) assert.match(good.first.toString('latin1'), /^HTTP\/1\.1 /);
  });

  test('reloadTls() with a CRL added to the file applies to new handshakes', async () => {
    // The listener starts with the CA's CRL from before the revocation, then the file is replaced.
    const crlPath = join(tmp.path, 'live-crl.pem');
    copyFileSync(rev.emptyCrl, crlPath);
    const node = await broker([{ port: 0, host: '127.0.0.1', protocol: 'mqtts', tls: mtls(crlPath) }]);
    const port = node.addresses[0]!.port;
    const before = await tryClient(port, rev.revokedCert, rev.revokedKey);
    assert.equal(before.ok, true, `before the reload: ${before.ok ? '' : before.error}`);
    copyFileSync(rev.crl, crlPath);
    assert.deepEqual(node.reloadTls(), []);
    const afterReload = await tryClient(port, rev.revokedCert, rev.revokedKey);
    assert.equal(afterReload.ok, false, 'revoked after the reload');
    const good = await tryClient(port, rev.goodCert, rev.goodKey);
    assert.equal(good.ok, true);
  });
});
