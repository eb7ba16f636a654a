import { fileURLToPath } from 'node:url';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ConfigError, configFromObject, configToObject, envNameFor, loadConfig } from './load.js';
import { CONFIG_SCHEMA, defaultConfig, defaultListener, fieldName, type FieldSpec, type SkeinConfig } from './schema.js';
import { formatBytes, formatDurationMs, parseBytes, parseDurationMs } from './units.js';
import { renderConfigTable, updateReadme } from './docs.js';
import { createLogger } from '../log.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'skein-config-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Runs `fn`, asserts it throws a ConfigError, returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

function errorOf(raw: unknown): ConfigError {
  return configError(() => configFromObject(raw));
}

const MiB = 1024 * 1024;

describe('defaults', () => {
  it('loadConfig with nothing gives defaultConfig()', () => {
    assert.deepEqual(loadConfig({ env: {} }), defaultConfig());
  });

  it('has the documented values, normalized', () => {
    const c = defaultConfig();
    assert.ok(c.nodeId.length > 0);
    assert.deepEqual(c.listeners, [{ ...defaultListener(), port: 1883, host: '0.0.0.0' }]);
    assert.equal(c.dataDir, './data');
    assert.equal(c.logLevel, 'info');
    assert.deepEqual(c.store, { type: 'embedded', durability: 'write', compactThreshold: 64 * MiB });
    assert.equal(c.limits.maxPacketSize, 1 * MiB);
    assert.equal(c.limits.maxTopicLength, 65535);
    assert.equal(c.limits.maxTopicLevels, 128);
    assert.equal(c.limits.maxInflight, 1000);
    assert.equal(c.limits.receiveMaximum, 100);
    assert.equal(c.limits.maxQueuedMessages, 1000);
    assert.equal(c.limits.maxQueuedBytes, 16 * MiB);
    assert.equal(c.limits.maxConnections, 100000);
    assert.equal(c.limits.connectTimeoutMs, 10_000);
    assert.equal(c.limits.maxKeepAliveSec, 65535);
    assert.equal(c.limits.maxSessionExpirySec, 0xffffffff);
    assert.equal(c.limits.topicAliasMaximum, 10);
    assert.equal(c.limits.maxSubscriptionsPerClient, 1000);
    assert.deepEqual(c.mqtt, {
      maxQos: 2,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
      queueQos0Messages: false,
      allowZeroLengthClientId: true,
      autoIdPrefix: 'auto-',
      persistentClientExpirationSec: 0,
    });
    assert.equal(c.sys.intervalMs, 10_000);
    assert.equal(c.shutdownTimeoutMs, 10_000);
  });

  it('returns a fresh object each time', () => {
    const a = defaultConfig();
    a.limits.maxInflight = 1;
    a.listeners.push({ port: 1, host: 'x', protocol: 'mqtt' });
    assert.equal(defaultConfig().limits.maxInflight, 1000);
    assert.equal(defaultConfig().listeners.length, 1);
    const b = loadConfig({ env: {} });
    b.listeners[0]!.port = 1;
    assert.equal(loadConfig({ env: {} }).listeners[0]!.port, 1883);
  });

  it('the schema table and defaultConfig() have exactly the same fields', () => {
    const walk = (spec: FieldSpec, value: unknown, path: string): void => {
      if (spec.kind === 'object') {
        const names = Object.entries(spec.fields).map(([k, f]) => fieldName(k, f)).sort();
        assert.deepEqual(Object.keys(value as object).sort(), names, `fields of ${path || 'root'}`);
        for (const [k, f] of Object.entries(spec.fields)) walk(f, (value as Record<string, unknown>)[fieldName(k, f)], `${path}.${k}`);
      } else if (spec.kind === 'array') {
        for (const item of value as unknown[]) walk(spec.of, item, `${path}[]`);
        walk(spec.of, spec.itemDefault(), `${path}[] default`);
      } else {
        assert.notEqual(value, undefined, path);
      }
    };
    walk(CONFIG_SCHEMA, defaultConfig(), '');
  });

  it('file form round-trips', () => {
    const c = configFromObject({ limits: { maxPacketSize: 1500, connectTimeout: '1500ms' }, mqtt: { persistentClientExpiration: '7d' } });
    const back = configToObject(c);
    assert.equal((back.limits as Record<string, unknown>).connectTimeout, '1500ms');
    assert.equal((back.limits as Record<string, unknown>).maxPacketSize, 1500);
    assert.equal((back.store as Record<string, unknown>).compactThreshold, '64MiB');
    assert.deepEqual(configFromObject(back), c);
    assert.deepEqual(configFromObject(configToObject(defaultConfig())), defaultConfig());
  });
});

describe('files', () => {
  const yamlText = `
# a full-ish config
nodeId: broker-1
listeners:
  - port: 1884
  - port: 8883
    host: 127.0.0.1
dataDir: /var/lib/skein
logLevel: warn
store:
  type: memory
  durability: fsync
  compactThreshold: 128MiB
limits:
  maxPacketSize: 256KiB
  maxInflight: 50
  connectTimeout: 5s
  maxKeepAlive: 10m
  maxSessionExpiry: 14d
  maxQueuedBytes: 1.5MB
mqtt:
  maxQos: 1
  retainAvailable: false
  autoIdPrefix: ""
  persistentClientExpiration: 3600
sys:
  interval: 0
shutdownTimeout: 2.5
`;

  function checkFull(c: SkeinConfig): void {
    assert.equal(c.nodeId, 'broker-1');
    assert.deepEqual(c.listeners, [
      { ...defaultListener(), port: 1884, host: '0.0.0.0' },
      { ...defaultListener(), port: 8883, host: '127.0.0.1' },
    ]);
    assert.equal(c.dataDir, '/var/lib/skein');
    assert.equal(c.logLevel, 'warn');
    assert.deepEqual(c.store, { type: 'memory', durability: 'fsync', compactThreshold: 128 * MiB });
    assert.equal(c.limits.maxPacketSize, 256 * 1024);
    assert.equal(c.limits.maxInflight, 50);
    assert.equal(c.limits.receiveMaximum, 100, 'unset keys keep defaults');
    assert.equal(c.limits.connectTimeoutMs, 5000);
    assert.equal(c.limits.maxKeepAliveSec, 600);
    assert.equal(c.limits.maxSessionExpirySec, 14 * 86400);
    assert.equal(c.limits.maxQueuedBytes, 1_500_000);
    assert.equal(c.mqtt.maxQos, 1);
    assert.equal(c.mqtt.retainAvailable, false);
    assert.equal(c.mqtt.sharedSubscriptionAvailable, true);
    assert.equal(c.mqtt.autoIdPrefix, '');
    assert.equal(c.mqtt.persistentClientExpirationSec, 3600);
    assert.equal(c.sys.intervalMs, 0);
    assert.equal(c.shutdownTimeoutMs, 2500);
  }

  it('reads YAML (.yaml and .yml)', () => {
    checkFull(loadConfig({ file: file('full.yaml', yamlText), env: {} }));
    checkFull(loadConfig({ file: file('full.yml', yamlText), env: {} }));
  });

  it('reads JSON', () => {
    const json = {
      nodeId: 'broker-1',
      listeners: [{ port: 1884 }, { port: 8883, host: '127.0.0.1' }],
      dataDir: '/var/lib/skein',
      logLevel: 'warn',
      store: { type: 'memory', durability: 'fsync', compactThreshold: '128MiB' },
      limits: {
        maxPacketSize: '256KiB',
        maxInflight: 50,
        connectTimeout: '5s',
        maxKeepAlive: '10m',
        maxSessionExpiry: '14d',
        maxQueuedBytes: '1.5MB',
      },
      mqtt: { maxQos: 1, retainAvailable: false, autoIdPrefix: '', persistentClientExpiration: 3600 },
      sys: { interval: 0 },
      shutdownTimeout: 2.5,
    };
    checkFull(loadConfig({ file: file('full.json', JSON.stringify(json, null, 2)), env: {} }));
  });

  it('an empty file or an empty section means defaults', () => {
    assert.deepEqual(loadConfig({ file: file('empty.yaml', '# nothing\n'), env: {} }), defaultConfig());
    const c = loadConfig({ file: file('sections.yaml', 'limits:\n  # maxInflight: 5\nmqtt:\n'), env: {} });
    assert.deepEqual(c, defaultConfig());
  });

  it('takes the file from SKEIN_CONFIG when no file is given', () => {
    const p = file('from-env.yaml', 'logLevel: error\n');
    assert.equal(loadConfig({ env: { SKEIN_CONFIG: p } }).logLevel, 'error');
    assert.equal(loadConfig({ file: file('explicit.yaml', 'logLevel: warn\n'), env: { SKEIN_CONFIG: p } }).logLevel, 'warn');
  });
});

describe('units', () => {
  const bytes: [unknown, number | 'syntax' | 'fraction'][] = [
    [0, 0],
    [1024, 1024],
    ['1024', 1024],
    ['20B', 20],
    ['512KB', 512_000],
    ['512kb', 512_000],
    ['1KiB', 1024],
    ['1.5KiB', 1536],
    ['1MB', 1_000_000],
    ['1.1MB', 1_100_000],
    ['1MiB', 1_048_576],
    ['64MiB', 67_108_864],
    ['2GB', 2_000_000_000],
    ['1GiB', 1_073_741_824],
    ['1TiB', 1_099_511_627_776],
    [' 16 MiB ', 16 * MiB],
    ['0.1KiB', 'fraction'],
    [1.5, 'fraction'],
    ['1k', 'syntax'],
    ['1 megabyte', 'syntax'],
    ['-1MiB', 'syntax'],
    ['', 'syntax'],
    ['MiB', 'syntax'],
    ['1.2.3MB', 'syntax'],
    [true, 'syntax'],
    [null, 'syntax'],
  ];
  for (const [input, expected] of bytes) {
    it(`bytes ${JSON.stringify(input)} → ${expected}`, () => {
      const r = parseBytes(input);
      if (typeof expected === 'number') assert.deepEqual(r, { ok: true, value: expected });
      else assert.deepEqual(r, { ok: false, reason: expected });
    });
  }

  const durations: [unknown, number | 'syntax' | 'fraction'][] = [
    [0, 0],
    [10, 10_000],
    [2.5, 2500],
    [0.001, 1],
    ['10', 10_000],
    ['500ms', 500],
    ['10s', 10_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['14d', 14 * 86_400_000],
    ['1h30m', 5_400_000],
    ['1h 30m 15s', 5_415_000],
    ['10S', 10_000],
    [0xffffffff, 0xffffffff * 1000],
    ['0.5ms', 'fraction'],
    [0.0001, 'fraction'],
    ['10 seconds', 'syntax'],
    ['s', 'syntax'],
    ['-5s', 'syntax'],
    ['', 'syntax'],
    ['5x', 'syntax'],
    [false, 'syntax'],
  ];
  for (const [input, expected] of durations) {
    it(`duration ${JSON.stringify(input)} → ${expected}`, () => {
      const r = parseDurationMs(input, 1000);
      if (typeof expected === 'number') assert.deepEqual(r, { ok: true, value: expected });
      else assert.deepEqual(r, { ok: false, reason: expected });
    });
  }

  it('formats back to the largest exact unit', () => {
    assert.equal(formatBytes(1024), '1KiB');
    assert.equal(formatBytes(64 * MiB), '64MiB');
    assert.equal(formatBytes(512_000), '500KiB');
    assert.equal(formatBytes(1_000_000), '1MB');
    assert.equal(formatBytes(1500), '1500B');
    assert.equal(formatBytes(0), '0B');
    assert.equal(formatDurationMs(10_000), '10s');
    assert.equal(formatDurationMs(90_000), '90s');
    assert.equal(formatDurationMs(86_400_000), '1d');
    assert.equal(formatDurationMs(1500), '1500ms');
    assert.equal(formatDurationMs(0), '0s');
  });

  it('normalizes into the unit of the TypeScript field', () => {
    const c = configFromObject({
      limits: { connectTimeout: '1m', maxKeepAlive: '1h', maxSessionExpiry: 0xffffffff, maxPacketSize: '512KB' },
      mqtt: { persistentClientExpiration: '2d' },
      sys: { interval: '1.5s' },
      shutdownTimeout: '250ms',
    });
    assert.equal(c.limits.connectTimeoutMs, 60_000);
    assert.equal(c.limits.maxKeepAliveSec, 3600);
    assert.equal(c.limits.maxSessionExpirySec, 0xffffffff);
    assert.equal(c.limits.maxPacketSize, 512_000);
    assert.equal(c.mqtt.persistentClientExpirationSec, 172_800);
    assert.equal(c.sys.intervalMs, 1500);
    assert.equal(c.shutdownTimeoutMs, 250);
  });
});

describe('environment', () => {
  it('maps SKEIN_ + UPPER_SNAKE path with __ between levels', () => {
    assert.equal(envNameFor(['limits', 'maxPacketSize']), 'SKEIN_LIMITS__MAX_PACKET_SIZE');
    assert.equal(envNameFor(['logLevel']), 'SKEIN_LOG_LEVEL');
    assert.equal(envNameFor(['listeners', 0, 'port']), 'SKEIN_LISTENERS__0__PORT');
  });

  it('overrides leaves with coerced values', () => {
    const c = loadConfig({
      env: {
        SKEIN_LIMITS__MAX_PACKET_SIZE: '2MiB',
        SKEIN_LOG_LEVEL: 'debug',
        SKEIN_DATA_DIR: '/tmp/skein-data',
        SKEIN_NODE_ID: 'node-7',
        SKEIN_LIMITS__MAX_INFLIGHT: '5',
        SKEIN_LIMITS__MAX_SESSION_EXPIRY: '0xFFFFFFFF',
        SKEIN_LIMITS__CONNECT_TIMEOUT: '2',
        SKEIN_MQTT__RETAIN_AVAILABLE: 'false',
        SKEIN_MQTT__QUEUE_QOS0_MESSAGES: 'yes',
        SKEIN_MQTT__MAX_QOS: '1',
        SKEIN_SYS__INTERVAL: '0',
        SKEIN_STORE__TYPE: 'memory',
        SKEIN_SHUTDOWN_TIMEOUT: '',
        PATH: '/usr/bin',
      },
    });
    assert.equal(c.limits.maxPacketSize, 2 * MiB);
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.dataDir, '/tmp/skein-data');
    assert.equal(c.nodeId, 'node-7');
    assert.equal(c.limits.maxInflight, 5);
    assert.equal(c.limits.maxSessionExpirySec, 0xffffffff);
    assert.equal(c.limits.connectTimeoutMs, 2000, 'a bare number is seconds');
    assert.equal(c.mqtt.retainAvailable, false);
    assert.equal(c.mqtt.queueQos0Messages, true);
    assert.equal(c.mqtt.maxQos, 1);
    assert.equal(c.sys.intervalMs, 0);
    assert.equal(c.store.type, 'memory');
    assert.equal(c.shutdownTimeoutMs, 10_000, 'an empty variable is unset');
  });

  it('edits listeners by index, appends at the end, or replaces the list as JSON', () => {
    const a = loadConfig({ env: { SKEIN_LISTENERS__0__PORT: '1884', SKEIN_LISTENERS__1__PORT: '8883', SKEIN_LISTENERS__1__HOST: '::1' } });
    assert.deepEqual(a.listeners, [
      { ...defaultListener(), port: 1884, host: '0.0.0.0' },
      { ...defaultListener(), port: 8883, host: '::1' },
    ]);
    const b = loadConfig({ env: { SKEIN_LISTENERS: '[{"port":1},{"port":2}]', SKEIN_LISTENERS__1__HOST: 'localhost' } });
    assert.deepEqual(
      b.listeners.map((l) => `${l.host}:${l.port}`),
      ['0.0.0.0:1', 'localhost:2'],
    );
    const c = loadConfig({ env: { SKEIN_LIMITS: '{"maxInflight":7}' }, file: file('merge.yaml', 'limits:\n  receiveMaximum: 9\n') });
    assert.equal(c.limits.maxInflight, 7);
    assert.equal(c.limits.receiveMaximum, 9, 'a JSON section merges into the file section');
  });

  it('edits a listener from the file', () => {
    const p = file('listeners.yaml', 'listeners:\n  - port: 1884\n  - port: 1885\n');
    const c = loadConfig({ file: p, env: { SKEIN_LISTENERS__1__HOST: '127.0.0.1' } });
    assert.deepEqual(c.listeners.map((l) => `${l.host}:${l.port}`), ['0.0.0.0:1884', '127.0.0.1:1885']);
  });
});

describe('precedence', () => {
  it('flags beat env beat file beat defaults', () => {
    const p = file('prec.yaml', 'logLevel: warn\ndataDir: /from/file\nnodeId: file-node\nlisteners:\n  - port: 1884\n    host: 10.0.0.1\n  - port: 1885\nlimits:\n  maxInflight: 3\n');
    const env = { SKEIN_LOG_LEVEL: 'debug', SKEIN_DATA_DIR: '/from/env', SKEIN_LISTENERS__0__PORT: '2000', SKEIN_LIMITS__MAX_INFLIGHT: '4' };
    const fileOnly = loadConfig({ file: p, env: {} });
    assert.equal(fileOnly.logLevel, 'warn');
    assert.equal(fileOnly.limits.maxInflight, 3);

    const withEnv = loadConfig({ file: p, env });
    assert.equal(withEnv.logLevel, 'debug');
    assert.equal(withEnv.dataDir, '/from/env');
    assert.equal(withEnv.listeners[0]!.port, 2000);
    assert.equal(withEnv.limits.maxInflight, 4);
    assert.equal(withEnv.nodeId, 'file-node');

    const all = loadConfig({
      file: p,
      env,
      flags: { logLevel: 'trace', dataDir: '/from/flag', port: 3000, host: '127.0.0.1', nodeId: 'flag-node' },
    });
    assert.equal(all.logLevel, 'trace');
    assert.equal(all.dataDir, '/from/flag');
    assert.equal(all.nodeId, 'flag-node');
    assert.deepEqual(all.listeners, [
      { ...defaultListener(), port: 3000, host: '127.0.0.1' },
      { ...defaultListener(), port: 1885, host: '0.0.0.0' },
    ]);
    assert.equal(all.limits.maxInflight, 4, 'keys without a flag keep the env value');
  });

  it('--port/--host change the default listener and accept strings from argv', () => {
    const c = loadConfig({ env: {}, flags: { port: '1884', host: '127.0.0.1', logLevel: undefined } });
    assert.deepEqual(c.listeners, [{ ...defaultListener(), port: 1884, host: '127.0.0.1' }]);
    assert.equal(c.logLevel, 'info');
  });
});

describe('errors name the key', () => {
  it('out of range, with the value as written', () => {
    const err = loadConfig.bind(null, { env: { SKEIN_LIMITS__MAX_PACKET_SIZE: '2GB' } });
    const e = configError(err);
    assert.equal(e.key, 'limits.maxPacketSize');
    assert.equal(
      e.message,
      'config: limits.maxPacketSize: must be between 20 and 268435455 bytes, got "2GB" (env SKEIN_LIMITS__MAX_PACKET_SIZE)',
    );
    assert.equal(e.issues.length, 1);
    assert.equal(e.issues[0]!.source, 'env SKEIN_LIMITS__MAX_PACKET_SIZE');
    assert.match(errorOf({ limits: { maxPacketSize: 19 } }).message, /^config: limits\.maxPacketSize: must be between 20 and 268435455 bytes, got 19$/);
    assert.match(errorOf({ limits: { maxInflight: 0 } }).message, /limits\.maxInflight: must be between 1 and 65535, got 0/);
    assert.match(errorOf({ limits: { receiveMaximum: 65536 } }).message, /limits\.receiveMaximum: must be between 1 and 65535, got 65536/);
    assert.match(errorOf({ limits: { topicAliasMaximum: -1 } }).message, /limits\.topicAliasMaximum: must be between 0 and 65535/);
    assert.match(errorOf({ mqtt: { maxQos: 3 } }).message, /mqtt\.maxQos: must be between 0 and 2, got 3/);
    assert.match(errorOf({ listeners: [{ port: 70000 }] }).message, /listeners\[0\]\.port: must be between 0 and 65535, got 70000/);
    assert.match(errorOf({ limits: { maxKeepAlive: '1d' } }).message, /limits\.maxKeepAlive: must be between 1s and 65535s, got "1d"/);
    assert.match(errorOf({ sys: { interval: '500ms' } }).message, /sys\.interval: must be between 1s and 1d, or 0 \(disables `\$SYS`\), got "500ms"/);
  });

  it('unknown keys, with a suggestion for likely typos', () => {
    const typo = errorOf({ limits: { maxPaketSize: 10 } });
    assert.equal(typo.key, 'limits.maxPaketSize');
    assert.match(typo.message, /^config: limits\.maxPaketSize: unknown key, did you mean "limits\.maxPacketSize"\?/);
    assert.match(errorOf({ limits: { max_packet_size: 10 } }).message, /did you mean "limits\.maxPacketSize"/);
    assert.match(errorOf({ limits: { connectTimeoutMs: 10 } }).message, /limits\.connectTimeoutMs: unknown key, did you mean "limits\.connectTimeout"/);
    assert.match(errorOf({ loglevel: 'info' }).message, /loglevel: unknown key, did you mean "logLevel"/);
    assert.match(errorOf({ maxInflight: 5 }).message, /^config: maxInflight: unknown key here, did you mean "limits\.maxInflight"\?/);
    assert.match(errorOf({ 'limits.maxInflight': 5 }).message, /limits\.maxInflight: unknown key; keys are nested/);
    assert.match(errorOf({ listeners: [{ prot: 1 }] }).message, /listeners\[0\]\.prot: unknown key, did you mean "listeners\[0\]\.port"/);
    const far = errorOf({ banana: 1 });
    assert.match(far.message, /^config: banana: unknown key \(known keys here: nodeId, listeners,/);
    assert.doesNotMatch(far.message, /did you mean/);
  });

  it('wrong types', () => {
    const cases: [unknown, string, RegExp][] = [
      [{ limits: { maxInflight: 'many' } }, 'limits.maxInflight', /must be an integer, got "many"/],
      [{ limits: { maxInflight: '5' } }, 'limits.maxInflight', /must be an integer, not a string \(remove the quotes\), got "5"/],
      [{ limits: { maxInflight: 2.5 } }, 'limits.maxInflight', /must be an integer, got 2\.5/],
      [{ mqtt: { retainAvailable: 'yes' } }, 'mqtt.retainAvailable', /must be true or false, got "yes"/],
      [{ mqtt: { retainAvailable: 'true' } }, 'mqtt.retainAvailable', /remove the quotes/],
      [{ nodeId: 42 }, 'nodeId', /must be a string \(quote it in YAML\), got 42/],
      [{ nodeId: 'a/b' }, 'nodeId', /must not contain whitespace, "\/", "\+" or "#", got "a\/b"/],
      [{ dataDir: '' }, 'dataDir', /must not be empty, got ""/],
      [{ logLevel: 'verbose' }, 'logLevel', /must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "verbose"/],
      [{ logLevel: 'INFO' }, 'logLevel', /did you mean "info"/],
      [{ store: { type: 'disk' } }, 'store.type', /must be one of "embedded", "memory", got "disk"/],
      [{ store: { compactThreshold: 'big' } }, 'store.compactThreshold', /must be a byte size: .*, got "big"/],
      [{ store: { compactThreshold: '0.1KiB' } }, 'store.compactThreshold', /must be a whole number of bytes/],
      [{ limits: { connectTimeout: 'soon' } }, 'limits.connectTimeout', /must be a duration: a number of seconds or a string like "500ms"/],
      [{ limits: { maxKeepAlive: '1500ms' } }, 'limits.maxKeepAlive', /must be a whole number of seconds, got "1500ms"/],
      [{ limits: { connectTimeout: '0.5ms' } }, 'limits.connectTimeout', /must be a whole number of milliseconds/],
      [{ limits: 5 }, 'limits', /must be a mapping of keys, got 5/],
      [{ listeners: { port: 1883 } }, 'listeners', /must be a list, got \{"port":1883\}/],
      [{ listeners: [] }, 'listeners', /must have between 1 and 64 entries, got \[\]/],
      [{ listeners: [{ port: 1883 }, { port: 1883, host: '0.0.0.0' }] }, 'listeners[1]', /same host and port as listeners\[0\]/],
      [{ listeners: [{ protocol: 'quic' }] }, 'listeners[0].protocol', /must be one of "mqtt", "mqtts", "ws", "wss", got "quic"/],
      [{ listeners: [{ protocol: 'mqtts' }] }, 'listeners[0]', /protocol mqtts needs tls\.cert and tls\.key/],
    ];
    for (const [raw, key, re] of cases) {
      const e = errorOf(raw);
      assert.equal(e.key, key, JSON.stringify(raw));
      assert.ok(e.message.startsWith(`config: ${key}: `), e.message);
      assert.match(e.message, re);
    }
  });

  it('bad environment variables name the variable', () => {
    const e = configError(() => loadConfig({ env: { SKEIN_LIMITS__MAX_PAKET_SIZE: '1MiB' } }));
    assert.equal(e.key, 'SKEIN_LIMITS__MAX_PAKET_SIZE');
    assert.match(e.message, /^config: SKEIN_LIMITS__MAX_PAKET_SIZE: unknown setting .*did you mean SKEIN_LIMITS__MAX_PACKET_SIZE \(limits\.maxPacketSize\)\?/);
    assert.match(configError(() => loadConfig({ env: { SKEIN_FOO: '1' } })).message, /^config: SKEIN_FOO: unknown setting/);
    const v = configError(() => loadConfig({ env: { SKEIN_MQTT__MAX_QOS: 'two' } }));
    assert.equal(v.message, 'config: mqtt.maxQos: must be an integer, got "two" (env SKEIN_MQTT__MAX_QOS)');
    assert.match(configError(() => loadConfig({ env: { SKEIN_LISTENERS: '[{port:1}]' } })).message, /^config: listeners: must be JSON \(a list\)/);
    assert.match(configError(() => loadConfig({ env: { SKEIN_LISTENERS__3__PORT: '1' } })).message, /listeners\[3\]: index 3 is past the end of listeners \(1 entry/);
  });

  it('bad flags name the flag', () => {
    const e = configError(() => loadConfig({ env: {}, flags: { port: 'http' } }));
    assert.equal(e.message, 'config: listeners[0].port: must be an integer, got "http" (flag --port)');
    assert.match(configError(() => loadConfig({ env: {}, flags: { logLevel: 'loud' } })).message, /^config: logLevel: must be one of .*, got "loud" \(flag --log-level\)/);
  });

  it('values from a file carry file and line', () => {
    const p = file('lines.yaml', 'logLevel: info\nlimits:\n  maxInflight: 0\n  bogus: 1\n');
    const e = configError(() => loadConfig({ file: p, env: {} }));
    const byKey = new Map(e.issues.map((i) => [i.key, i]));
    assert.equal(byKey.get('limits.maxInflight')!.source, `${p}:3`);
    assert.equal(byKey.get('limits.bogus')!.source, `${p}:4`);
    const j = file('lines.json', '{\n  "limits": {\n    "maxInflight": 0\n  }\n}\n');
    assert.match(configError(() => loadConfig({ file: j, env: {} })).message, new RegExp(`limits\\.maxInflight: .*\\(${j.replace(/[.\\]/g, '\\$&')}:3\\)$`));
  });
});

describe('odd input', () => {
  it('prototype names are unknown keys, not inherited fields', () => {
    const p = file('proto.yaml', '__proto__:\n  x: 1\nlimits:\n  constructor: 1\n  toString: 2\n');
    const e = configError(() => loadConfig({ file: p, env: { SKEIN_LIMITS: '{"__proto__":{"a":1},"maxInflight":"x"}' } }));
    const byKey = new Map(e.issues.map((i) => [i.key, i.source]));
    assert.deepEqual([...byKey.keys()].sort(), ['__proto__', 'limits.__proto__', 'limits.constructor', 'limits.maxInflight', 'limits.toString']);
    assert.equal(byKey.get('limits.constructor'), `${p}:4`, 'a merged JSON section keeps the file as source of the other keys');
    assert.equal(byKey.get('limits.maxInflight'), 'env SKEIN_LIMITS');
    assert.equal(({} as Record<string, unknown>).a, undefined);
  });

  it('a JSON file may start with a byte order mark', () => {
    assert.equal(loadConfig({ file: file('bom.json', '\uFEFF{"logLevel":"warn"}'), env: {} }).logLevel, 'warn');
  });
});

describe('several errors', () => {
  it('are all reported at once, one line each', () => {
    const p = file('many.yaml', 'logLevel: loud\nlimits:\n  maxInflight: 0\n  maxPaketSize: 1\nmqtt:\n  maxQos: 5\n');
    const e = configError(() => loadConfig({ file: p, env: { SKEIN_DATA_DIR: '/ok', SKEIN_STORE__TYPE: 'disk' }, flags: { port: 99999 } }));
    const keys = e.issues.map((i) => i.key).sort();
    assert.deepEqual(keys, ['limits.maxInflight', 'limits.maxPaketSize', 'listeners[0].port', 'logLevel', 'mqtt.maxQos', 'store.type']);
    const lines = e.message.split('\n');
    assert.equal(lines.length, 6);
    for (const line of lines) assert.match(line, /^config: \S+: /);
  });
});

describe('malformed files', () => {
  it('YAML errors name the file and line', () => {
    const p = file('broken.yaml', 'logLevel: info\nlimits: [1, 2\nmqtt: {}\n');
    const e = configError(() => loadConfig({ file: p, env: {} }));
    assert.equal(e.key, '');
    assert.match(e.message, new RegExp(`^config: ${p.replace(/[.\\]/g, '\\$&')}:3:1: invalid YAML: `));
    const dup = file('dup.yaml', 'logLevel: info\nlogLevel: debug\n');
    assert.match(configError(() => loadConfig({ file: dup, env: {} })).message, /dup\.yaml:2:1: invalid YAML: Map keys must be unique/);
    const tab = file('tab.yaml', 'limits:\n\tmaxInflight: 1\n');
    assert.match(configError(() => loadConfig({ file: tab, env: {} })).message, /tab\.yaml:2:\d+: invalid YAML/);
  });

  it('JSON errors name the file, line and column', () => {
    const p = file('broken.json', '{\n  "logLevel": "info",\n  "limits": { "maxInflight": 5, }\n}\n');
    assert.match(configError(() => loadConfig({ file: p, env: {} })).message, /broken\.json:3:33: invalid JSON: /);
    const q = file('broken2.json', '{\n  "logLevel": "info"\n  "dataDir": "x"\n}\n');
    assert.match(configError(() => loadConfig({ file: q, env: {} })).message, /broken2\.json:3:3: invalid JSON: /);
    const r = file('broken3.json', '{\n  "logLevel": }\n');
    assert.match(configError(() => loadConfig({ file: r, env: {} })).message, /broken3\.json:2:15: invalid JSON: /);
    const t = file('trunc.json', '{\n  "logLevel": "info"');
    assert.match(configError(() => loadConfig({ file: t, env: {} })).message, /trunc\.json:2:\d+: invalid JSON: /);
  });

  it('missing files, wrong extensions and non-mapping documents', () => {
    const missing = join(dir, 'nope.yaml');
    assert.match(configError(() => loadConfig({ file: missing, env: {} })).message, /cannot read config file ".*nope\.yaml": ENOENT/);
    assert.match(configError(() => loadConfig({ file: file('c.toml', 'a = 1'), env: {} })).message, /c\.toml" has unsupported extension "\.toml"/);
    assert.match(configError(() => loadConfig({ file: file('list.yaml', '- 1\n- 2\n'), env: {} })).message, /list\.yaml: the top level must be a mapping of keys/);
    assert.match(configError(() => loadConfig({ file: file('alias.yaml', 'logLevel: *nope\n'), env: {} })).message, /alias\.yaml.*invalid YAML/);
  });
});

describe('README.md', () => {
  it('has the key table of the current schema', () => {
    // dist/config/load.test.js -> src/config/README.md
    const readme = fileURLToPath(new URL('../../src/config/README.md', import.meta.url));
    assert.ok(existsSync(readme), readme);
    const text = readFileSync(readme, 'utf8');
    assert.equal(text, updateReadme(text), 'README.md is out of date: node <outDir>/config/docs.js src/config/README.md');
    const table = renderConfigTable();
    for (const key of ['`limits.maxPacketSize`', '`SKEIN_LIMITS__MAX_PACKET_SIZE`', '`limits.connectTimeoutMs (ms)`', '`sys.interval`']) {
      assert.ok(table.includes(key), key);
    }
  });
});

describe('createLogger (src/log.ts)', () => {
  function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    });
    return {
      stream,
      lines: () =>
        chunks
          .join('')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l) as Record<string, unknown>),
    };
  }

  it('writes JSON lines at or above the level', () => {
    const out = capture();
    const log = createLogger('info', { name: 'skein', destination: out.stream });
    log.debug('per-message detail');
    log.info({ port: 1883 }, 'listening');
    log.error({ err: new Error('boom') }, 'store failed');
    const lines = out.lines();
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.msg, 'listening');
    assert.equal(lines[0]!.port, 1883);
    assert.equal(lines[0]!.name, 'skein');
    assert.equal(lines[0]!.level, 30);
    assert.equal(typeof lines[0]!.time, 'string');
    assert.equal((lines[1]!.err as Record<string, unknown>).message, 'boom');
  });

  it('honours debug, silent and extra base fields', () => {
    const out = capture();
    const log = createLogger('debug', { destination: out.stream, base: { nodeId: 'n1' } });
    log.child({ component: 'session' }).debug('connected');
    log.trace('packet');
    const [line] = out.lines();
    assert.equal(out.lines().length, 1);
    assert.equal(line!.nodeId, 'n1');
    assert.equal(line!.component, 'session');
    assert.equal(line!.pid, process.pid);
    const quiet = capture();
    createLogger('silent', { destination: quiet.stream }).fatal('nothing');
    assert.equal(quiet.lines().length, 0);
  });
});
