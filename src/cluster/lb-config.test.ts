/**
 * `skein lb-config`: the generated HAProxy configuration is checked by the real HAProxy
 * (`haproxy -c -f`), and the key lines are asserted; the nginx one is checked as text (nginx is
 * not installed here).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { killAll, REPO_ROOT, runProc, tempDir } from '../interop/helpers.js';
import { haproxyConfig, idleTimeoutSec, nginxConfig, parseNodeList } from './lb-config.js';

after(() => killAll());

const HAPROXY = '/usr/sbin/haproxy';

async function haproxyCheck(cfg: string, dir: string): Promise<{ code: number | null; out: string }> {
  const file = join(dir, `haproxy-${Math.random().toString(36).slice(2)}.cfg`);
  writeFileSync(file, cfg);
  const p = await runProc(HAPROXY, ['-c', '-f', file], 15_000);
  return { code: p.exit!.code, out: p.stdout + p.stderr };
}

describe('lb-config', () => {
  const dir = tempDir('skein-lbcfg-');
  after(() => dir.remove());

  it('parses node lists and rejects bad ones', () => {
    assert.deepEqual(parseNodeList('10.0.0.1:1883,b.example:1884@9000', 8081), [
      { name: 'n1', host: '10.0.0.1', port: 1883, healthPort: 8081 },
      { name: 'n2', host: 'b.example', port: 1884, healthPort: 9000 },
    ]);
    assert.deepEqual(parseNodeList('[::1]:1883'), [{ name: 'n1', host: '[::1]', port: 1883 }]);
    assert.throws(() => parseNodeList('nohost'), /not host:port/);
    assert.throws(() => parseNodeList('a:70000'), /1-65535/);
    assert.throws(() => parseNodeList(''), /at least one/);
  });

  it('HAProxy with readiness checks, PROXY v2 and TLS passes haproxy -c', async () => {
    // A self-signed certificate + key in one PEM, as `crt` wants it.
    const key = join(dir.path, 'key.pem');
    const crt = join(dir.path, 'crt.pem');
    const gen = await runProc('/usr/bin/openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=skein-test'], 30_000);
    assert.equal(gen.exit!.code, 0, gen.stderr);
    const pem = join(dir.path, 'both.pem');
    writeFileSync(pem, readFileSync(crt, 'utf8') + readFileSync(key, 'utf8'));

    const cfg = haproxyConfig({
      nodes: parseNodeList('127.0.0.1:1884,127.0.0.1:1885', 8081),
      listen: '1883',
      tls: { listen: '8883', certFile: pem },
      keepaliveSec: 60,
      proxyProtocol: true,
    });
    const r = await haproxyCheck(cfg, dir.path);
    assert.equal(r.code, 0, `haproxy -c failed:\n${r.out}\n${cfg}`);
    const lines = cfg.split('\n').map((l) => l.trim());
    for (const l of [
      'mode tcp',
      'balance leastconn',
      'option httpchk GET /ready/lb',
      'http-check disable-on-404',
      'http-check expect status 200',
      'bind :1883',
      `bind :8883 ssl crt ${pem}`,
      'timeout client 95s',
      'timeout server 95s',
      'timeout tunnel 95s',
      'server n1 127.0.0.1:1884 check port 8081',
      'server n2 127.0.0.1:1885 check port 8081',
    ]) {
      assert.ok(lines.includes(l), `missing line "${l}" in:\n${cfg}`);
    }
    const ds = lines.find((l) => l.startsWith('default-server'))!;
    assert.match(ds, /\bon-marked-down shutdown-sessions\b/);
    assert.match(ds, /\bsend-proxy-v2\b/);
    assert.ok(idleTimeoutSec(60) > 1.5 * 60);
  });

  it('HAProxy with a TCP check and no PROXY protocol passes haproxy -c; timeouts follow the keep alive', async () => {
    const cfg = haproxyConfig({ nodes: parseNodeList('127.0.0.1:1884'), listen: '127.0.0.1:11883', keepaliveSec: 300, proxyProtocol: false });
    const r = await haproxyCheck(cfg, dir.path);
    assert.equal(r.code, 0, `haproxy -c failed:\n${r.out}\n${cfg}`);
    assert.ok(!/httpchk/.test(cfg));
    assert.ok(!/send-proxy/.test(cfg));
    assert.match(cfg, /^ {2}server n1 127\.0\.0\.1:1884 check$/m);
    assert.match(cfg, /^ {2}bind 127\.0\.0\.1:11883$/m);
    const t = idleTimeoutSec(300);
    assert.ok(t > 450);
    assert.match(cfg, new RegExp(`^  timeout tunnel ${t}s$`, 'm'));
  });

  it('a broken config is caught by haproxy -c (the check can fail)', async () => {
    const cfg = haproxyConfig({ nodes: parseNodeList('127.0.0.1:1884'), listen: '1883', keepaliveSec: 60, proxyProtocol: false }).replace('balance leastconn', 'balance no-such-algo');
    const r = await haproxyCheck(cfg, dir.path);
    assert.notEqual(r.code, 0);
  });

  it('nginx stream config: least_conn, PROXY v1, proxy_timeout above 1.5 x keep alive, TLS', () => {
    const cfg = nginxConfig({
      nodes: parseNodeList('10.0.0.1:1883,10.0.0.2:1883'),
      listen: '1883',
      tls: { listen: '8883', certFile: '/etc/ssl/skein.crt', keyFile: '/etc/ssl/skein.key' },
      keepaliveSec: 60,
      proxyProtocol: true,
    });
    const lines = cfg.split('\n').map((l) => l.trim());
    for (const l of [
      'stream {',
      'upstream skein_nodes {',
      'least_conn;',
      'server 10.0.0.1:1883 max_fails=2 fail_timeout=10s;',
      'server 10.0.0.2:1883 max_fails=2 fail_timeout=10s;',
      'listen 1883;',
      'listen 8883 ssl;',
      'ssl_certificate /etc/ssl/skein.crt;',
      'ssl_certificate_key /etc/ssl/skein.key;',
      'proxy_pass skein_nodes;',
      'proxy_timeout 95s;',
    ]) {
      assert.ok(lines.includes(l), `missing line "${l}" in:\n${cfg}`);
    }
    assert.equal(lines.filter((l) => l.startsWith('proxy_protocol on;')).length, 2);
    // Balanced braces.
    assert.equal((cfg.match(/{/g) ?? []).length, (cfg.match(/}/g) ?? []).length);
    const plain = nginxConfig({ nodes: parseNodeList('10.0.0.1:1883'), listen: '1883', keepaliveSec: 60, proxyProtocol: false });
    assert.ok(!/proxy_protocol/.test(plain));
  });

  it('skein lb-config prints the configuration; bad arguments exit 2', async () => {
    const bin = join(REPO_ROOT, 'bin/skein.js');
    const ok = await runProc(process.execPath, [bin, 'lb-config', '--nodes', '127.0.0.1:1884,127.0.0.1:1885', '--health-port', '8081', '--proxy-protocol', '--keepalive', '30'], 15_000);
    assert.equal(ok.exit!.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ {2}server n2 127\.0\.0\.1:1885 check port 8081$/m);
    assert.match(ok.stdout, /timeout tunnel 50s/);
    const r = await haproxyCheck(ok.stdout, dir.path);
    assert.equal(r.code, 0, r.out);
    const ng = await runProc(process.execPath, [bin, 'lb-config', '--kind', 'nginx', '--nodes', '127.0.0.1:1884', '--proxy-protocol'], 15_000);
    assert.equal(ng.exit!.code, 0, ng.stderr);
    assert.match(ng.stdout, /proxy_protocol on;/);
    const bad = await runProc(process.execPath, [bin, 'lb-config', '--nodes', 'x'], 15_000);
    assert.equal(bad.exit!.code, 2);
    assert.match(bad.stderr, /not host:port/);
    const none = await runProc(process.execPath, [bin, 'lb-config'], 15_000);
    assert.equal(none.exit!.code, 2);
    assert.match(none.stderr, /--nodes is required/);
  });
});
