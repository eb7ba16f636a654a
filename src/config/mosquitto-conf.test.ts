/**
 * The Mosquitto configuration reader: the grammar of mosquitto.conf(5) (examples written after the
 * man page), the mapping onto Skein's keys, warnings for unsupported options and errors for
 * malformed lines; and `skein start -c mosquitto.conf` end to end.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './load.js';
import { looksLikeMosquittoConf, parseMosquittoConf } from './mosquitto-conf.js';
import { CONFIG_SCHEMA, MQTT_MAX_PACKET_SIZE } from './schema.js';
import { makeTestPki } from '../testing/certs.js';
import { JsClient, REPO_ROOT, endAllJs, killAll, startProc, tempDir, within } from '../interop/helpers.js';
import { readFileSync } from 'node:fs';

const tmp = tempDir('skein-mosq-');
after(async () => {
  await endAllJs();
  await killAll();
  tmp.remove();
});

const hasAuth = Object.hasOwn(CONFIG_SCHEMA.fields, 'auth');

function load(name: string, text: string): { config: ReturnType<typeof loadConfig>; warnings: string[] } {
  const file = join(tmp.path, name);
  writeFileSync(file, text);
  const warnings: string[] = [];
  const config = loadConfig({ file, env: {}, onWarning: (w) => warnings.push(w) });
  return { config, warnings };
}

const FULL = `# Example after mosquitto.conf(5)
# =================================================================
# General configuration
# =================================================================
per_listener_settings false
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
persistence true
persistence_location /var/lib/mosquitto/
autosave_interval 1800
max_inflight_messages 40
max_queued_messages 5000
max_packet_size 2097152
max_keepalive 300
retain_available false
sys_interval 30
log_dest stderr

listener 1883
protocol mqtt
max_connections -1

listener 8883 127.0.0.1
cafile /etc/mosquitto/ca_certificates/ca.crt
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.3
max_connections 100

listener 9001
protocol websockets

listener 9443
protocol websockets
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
`;

describe('parseMosquittoConf', () => {
  test('maps the documented options onto Skein keys', () => {
    const r = parseMosquittoConf(FULL, 'm.conf');
    assert.deepEqual(r.errors, []);
    const raw = r.raw as Record<string, any>;
    assert.deepEqual(raw.listeners, [
      { port: 1883, host: '0.0.0.0', protocol: 'mqtt', maxConnections: 0 },
      {
        port: 8883,
        host: '127.0.0.1',
        protocol: 'mqtts',
        maxConnections: 100,
        tls: {
          ca: '/etc/mosquitto/ca_certificates/ca.crt',
          cert: '/etc/mosquitto/certs/server.crt',
          key: '/etc/mosquitto/certs/server.key',
          requireCertificate: true,
          useIdentityAsUsername: true,
          minVersion: 'TLSv1.3',
        },
      },
      { port: 9001, host: '0.0.0.0', protocol: 'ws', path: '' },
      { port: 9443, host: '0.0.0.0', protocol: 'wss', path: '', tls: { cert: '/etc/mosquitto/certs/server.crt', key: '/etc/mosquitto/certs/server.key' } },
    ]);
    assert.deepEqual(raw.auth, { allowAnonymous: false, passwordFile: '/etc/mosquitto/passwd', aclFile: '/etc/mosquitto/acl' });
    assert.equal(raw.store.type, 'embedded');
    assert.equal(raw.dataDir, '/var/lib/mosquitto/');
    assert.deepEqual(raw.limits, { maxInflight: 40, maxQueuedMessages: 5000, maxPacketSize: 2097152, maxKeepAlive: 300 });
    assert.equal(raw.mqtt.retainAvailable, false);
    assert.equal(raw.sys.interval, 30);
    // One warning per ignored option, with its line.
    assert.deepEqual(r.warnings, [
      'm.conf:5: warning: option "per_listener_settings" is not supported (not supported; authentication settings are global); ignored',
      'm.conf:11: warning: option "autosave_interval" is not supported (Skein writes its store continuously); ignored',
      'm.conf:18: warning: option "log_dest" is not supported (Skein logs JSON to stderr (logLevel)); ignored',
    ]);
    assert.equal(r.sources.get('limits.maxInflight'), 'm.conf:12');
    assert.equal(r.sources.get('listeners[1].tls.requireCertificate'), 'm.conf:28');
  });

  test('Mosquitto defaults: no persistence; no listener = localhost:1883 with anonymous access', () => {
    const none = parseMosquittoConf('# nothing but comments\n\n', 'e.conf');
    assert.deepEqual((none.raw as any).listeners, [{ port: 1883, host: '127.0.0.1', protocol: 'mqtt' }]);
    assert.equal((none.raw as any).auth.allowAnonymous, true);
    assert.equal((none.raw as any).store.type, 'memory');
    const one = parseMosquittoConf('listener 1883\n', 'e.conf');
    assert.equal((one.raw as any).auth.allowAnonymous, false);
  });

  test('per-listener options before any listener go to the default listener (port, bind_address)', () => {
    const r = parseMosquittoConf('port 1884\nbind_address 127.0.0.1\nmax_connections 10\nlistener 1885\n', 'd.conf');
    assert.deepEqual((r.raw as any).listeners, [
      { port: 1884, host: '127.0.0.1', protocol: 'mqtt', maxConnections: 10 },
      { port: 1885, host: '0.0.0.0', protocol: 'mqtt' },
    ]);
    assert.match(r.warnings[0]!, /^d\.conf:1: warning: option "port" is deprecated/);
  });

  test('malformed lines are errors naming the line', () => {
    const r = parseMosquittoConf(
      ['listener', 'listener 99999', 'allow_anonymous maybe', 'max_inflight_messages ten', 'max_packet_size 10', 'protocol quic', 'persistent_client_expiration 3x', 'cafile'].join('\n'),
      'bad.conf',
    );
    assert.deepEqual(r.errors, [
      'bad.conf:1: error: listener needs "listener <port> [bind address]"',
      'bad.conf:2: error: listener port must be between 0 and 65535, got "99999"',
      'bad.conf:3: error: option "allow_anonymous" must be true or false, got "maybe"',
      'bad.conf:4: error: option "max_inflight_messages" must be an integer, got "ten"',
      'bad.conf:5: error: max_packet_size must be 0 (no limit) or at least 20, got 10',
      'bad.conf:6: error: protocol must be "mqtt" or "websockets", got "quic"',
      'bad.conf:7: error: persistent_client_expiration must be a number with a unit h, d, w, m or y (e.g. 14d), got "3x"',
      'bad.conf:8: error: option "cafile" needs a value',
    ]);
    const half = parseMosquittoConf('listener 8883\ncertfile /a.pem\n', 'h.conf');
    assert.deepEqual(half.errors, ['h.conf:1: error: the listener needs both certfile and keyfile for TLS (it has only certfile)']);
  });

  test('unsupported things warn: bridges, plugins, unix sockets, unknown options, tlsv1.1', () => {
    const r = parseMosquittoConf(
      [
        'listener 0 /run/mosquitto.sock',
        'listener 1883',
        'connection cloud',
        'address broker.example.com:1883',
        'topic sensors/# out 1',
        'plugin /usr/lib/mosquitto_dynamic_security.so',
        'plugin_opt_config_file /var/lib/dynsec.json',
        'frobnicate yes',
        'message_size_limit 1000',
        'persistent_client_expiration 2d',
        'max_inflight_messages 0',
        'max_queued_messages 0',
      ].join('\n'),
      'w.conf',
    );
    assert.deepEqual(r.errors, []);
    const lines = r.warnings.map((w) => w.split(': warning: ')[0]);
    assert.deepEqual(lines, ['w.conf:1', 'w.conf:3', 'w.conf:4', 'w.conf:5', 'w.conf:6', 'w.conf:7', 'w.conf:8', 'w.conf:9']);
    assert.match(r.warnings[0]!, /Unix socket/);
    assert.match(r.warnings[1]!, /bridge "cloud" ignored/);
    assert.match(r.warnings[6]!, /"frobnicate" is unknown/);
    const raw = r.raw as any;
    assert.deepEqual(raw.listeners, [{ port: 1883, host: '0.0.0.0', protocol: 'mqtt' }]);
    assert.equal(raw.limits.maxPacketSize, 1000 + 1024);
    assert.equal(raw.mqtt.persistentClientExpiration, 2 * 86400);
    assert.equal(raw.limits.maxInflight, 65535);
    assert.equal(raw.limits.maxQueuedMessages, 2 ** 31 - 1);
    const t = parseMosquittoConf('listener 8883\ncertfile a\nkeyfile b\ntls_version tlsv1.1\nmax_packet_size 0\n', 't.conf');
    assert.match(t.warnings[0]!, /^t\.conf:4: .*tlsv1\.1/);
    assert.equal((t.raw as any).listeners[0].tls.minVersion, 'TLSv1.2');
    assert.equal((t.raw as any).limits.maxPacketSize, MQTT_MAX_PACKET_SIZE);
  });

  test('include_dir reads *.conf in alphabetical order', () => {
    const dir = join(tmp.path, 'conf.d');
    mkdirSync(dir);
    writeFileSync(join(dir, 'b.conf'), 'max_inflight_messages 7\n');
    writeFileSync(join(dir, 'a.conf'), 'max_inflight_messages 5\nlistener 1999\n');
    writeFileSync(join(dir, 'ignored.txt'), 'max_inflight_messages 9\n');
    const r = parseMosquittoConf(`listener 1883\ninclude_dir ${dir}\n`, 'main.conf');
    assert.deepEqual(r.errors, []);
    assert.equal((r.raw as any).limits.maxInflight, 7);
    assert.deepEqual((r.raw as any).listeners.map((l: any) => l.port), [1883, 1999]);
    assert.equal(r.sources.get('limits.maxInflight'), `${join(dir, 'b.conf')}:1`);
  });

  test('looksLikeMosquittoConf tells the grammars apart', () => {
    assert.equal(looksLikeMosquittoConf('# c\nlistener 1883\n'), true);
    assert.equal(looksLikeMosquittoConf('allow_anonymous true'), true);
    assert.equal(looksLikeMosquittoConf('listeners:\n  - port: 1\n'), false);
    assert.equal(looksLikeMosquittoConf('{"nodeId": "x"}'), false);
    assert.equal(looksLikeMosquittoConf('a = 1'), false);
    assert.equal(looksLikeMosquittoConf('hello world'), false);
  });
});

describe('loadConfig with a Mosquitto file', () => {
  test('a .conf file is read as Mosquitto, validated, and warnings reported', () => {
    const { config, warnings } = load('mosquitto.conf', 'listener 1883 127.0.0.1\nmax_inflight_messages 40\nlog_type all\nsys_interval 0\n');
    assert.deepEqual(
      config.listeners.map((l) => [l.port, l.host, l.protocol]),
      [[1883, '127.0.0.1', 'mqtt']],
    );
    assert.equal(config.limits.maxInflight, 40);
    assert.equal(config.sys.intervalMs, 0);
    assert.equal(config.store.type, 'memory');
    assert.ok(warnings.some((w) => /mosquitto\.conf:3: warning: option "log_type"/.test(w)), warnings.join('\n'));
  });

  test('another extension is sniffed by its first line', () => {
    const { config } = load('broker.cfg', '# mosquitto\nlistener 1884\n');
    assert.equal(config.listeners[0]!.port, 1884);
  });

  test('malformed lines and out-of-range values fail with the line', () => {
    assert.throws(() => load('bad.conf', 'listener 1883\nretain_available perhaps\n'), (err: ConfigError) => /bad\.conf:2: error/.test(err.message));
    assert.throws(
      () => load('range.conf', 'listener 1883\nmax_keepalive 100000\n'),
      (err: ConfigError) => /range\.conf:2/.test(err.message),
    );
    // A value Skein's schema refuses names the key and the line it came from.
    assert.throws(
      () => load('range2.conf', 'listener 1883\nallow_zero_length_clientid true\nauto_id_prefix ' + 'x'.repeat(80) + '\n'),
      (err: ConfigError) => /mqtt\.autoIdPrefix: .*range2\.conf:3/.test(err.message),
    );
  });

  test('auth options map to auth.* (or are reported when this build has no auth section)', () => {
    const { config, warnings } = load('auth.conf', 'listener 1883\nallow_anonymous true\npassword_file /tmp/pw\nacl_file /tmp/acl\n');
    if (hasAuth) {
      const auth = (config as unknown as { auth: Record<string, unknown> }).auth;
      assert.equal(auth.allowAnonymous, true);
      assert.equal(auth.passwordFile, '/tmp/pw');
      assert.equal(auth.aclFile, '/tmp/acl');
    } else {
      assert.ok(warnings.some((w) => /auth\.conf:3: warning: auth\.passwordFile is not supported/.test(w)), warnings.join('\n'));
      assert.ok(warnings.some((w) => /auth\.conf:4: warning: auth\.aclFile/.test(w)));
    }
  });
});

describe('skein start -c mosquitto.conf', () => {
  test('serves the listeners of a Mosquitto file (TCP and TLS) and prints warnings', async () => {
    const pki = makeTestPki(tmp.path);
    const conf = join(tmp.path, 'cli.conf');
    writeFileSync(
      conf,
      [
        '# drop-in test',
        'listener 0 127.0.0.1',
        'listener 0 127.0.0.1',
        `certfile ${pki.serverCert}`,
        `keyfile ${pki.serverKey}`,
        'allow_anonymous true',
        'log_timestamp true',
        'persistence false',
      ].join('\n') + '\n',
    );
    const proc = startProc(process.execPath, [join(REPO_ROOT, 'bin/skein.js'), 'start', '-c', conf, '--log-level', 'warn']);
    await proc.waitForLine(/^skein listening on mqtts:\/\/127\.0\.0\.1:(\d+)$/, 15_000);
    const tcpPort = Number(/skein listening on mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(proc.stdout)![1]);
    const tlsPort = Number(/skein listening on mqtts:\/\/127\.0\.0\.1:(\d+)/.exec(proc.stdout)![1]);
    assert.match(proc.stderr, /cli\.conf:7: warning: option "log_timestamp"/);
    const sub = await JsClient.connect(`mqtts://127.0.0.1:${tlsPort}`, { clientId: 'cli-tls', ca: readFileSync(pki.ca) });
    await sub.subscribe('cli/#', 1);
    const pub = await JsClient.connect(`mqtt://127.0.0.1:${tcpPort}`, { clientId: 'cli-tcp' });
    await pub.publish('cli/x', 'drop-in', 1);
    await sub.waitMessage('cli/x', 5000, 'drop-in');
    await Promise.all([sub.end(), pub.end()]);
    proc.kill('SIGTERM');
    const exit = await within(proc.exited, 10_000, 'skein exit');
    assert.equal(exit.code, 0, proc.describe());
  });
});
