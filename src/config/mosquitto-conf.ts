/**
 * Reads a Mosquitto configuration file (mosquitto.conf(5), 2.0 grammar) into Skein's file-form
 * configuration, so `skein start -c mosquitto.conf` works as a drop-in. The result goes through
 * the same validation as a YAML file (load.ts), so values out of Skein's ranges are reported there.
 *
 * Grammar: one `name value` per line; a line whose first non-blank character is `#` is a comment;
 * `listener <port> [address]` starts a listener block that the per-listener options below it
 * apply to (before any `listener`, they apply to the default listener of `port`/`bind_address`).
 *
 * Every option Skein does not support (or only approximates) yields one warning naming it and its
 * line; a malformed line (missing or invalid value) yields an error naming the line.
 *
 * Mosquitto defaults that differ from Skein's are made explicit here: persistence is off (Skein
 * store `memory`), and `allow_anonymous` is false once a listener is defined; with no listener at
 * all, Mosquitto 2 listens on localhost:1883 and allows anonymous clients, and so does this.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MQTT_MAX_PACKET_SIZE } from './schema.js';

export interface MosquittoConfResult {
  /** Skein configuration in file form (see load.ts). */
  raw: Record<string, unknown>;
  /** `file:line: option "x" ...; ignored` lines. */
  warnings: string[];
  /** `file:line: ...` lines; the configuration must not be used when there are any. */
  errors: string[];
  /** Key path (`limits.maxInflight`, `listeners[0].port`) -> `file:line` it came from. */
  sources: Map<string, string>;
}

interface ListenerDraft {
  port: number;
  host: string;
  websockets: boolean;
  line: string;
  tls: Record<string, unknown>;
  maxConnections?: number;
  proxyProtocol?: boolean;
  unix?: boolean;
  /** Key -> source line, for this listener's keys. */
  sources: Map<string, string>;
}

/** Options that belong to a bridge (`connection` blocks): bridges are not supported. */
const BRIDGE_OPTIONS = new Set([
  'address', 'addresses', 'bridge_attempt_unsubscribe', 'bridge_bind_address', 'bridge_cafile', 'bridge_capath',
  'bridge_certfile', 'bridge_keyfile', 'bridge_insecure', 'bridge_tls_version', 'bridge_alpn', 'bridge_identity',
  'bridge_psk', 'bridge_protocol_version', 'bridge_require_ocsp', 'bridge_max_packet_size', 'bridge_outgoing_retain',
  'cleansession', 'local_cleansession', 'idle_timeout', 'keepalive_interval', 'local_clientid', 'local_password',
  'local_username', 'notifications', 'notifications_local_only', 'notification_topic', 'remote_clientid',
  'remote_password', 'remote_username', 'restart_timeout', 'round_robin', 'start_type', 'threshold', 'topic',
  'try_private', 'bridge_reload_type',
]);

/** Mosquitto options Skein accepts and ignores, with the reason shown in the warning. */
const IGNORED: Record<string, string> = {
  autosave_interval: 'Skein writes its store continuously',
  autosave_on_changes: 'Skein writes its store continuously',
  persistence_file: 'Skein keeps its own store format in persistence_location',
  log_dest: 'Skein logs JSON to stderr (logLevel)',
  log_type: 'use logLevel',
  log_timestamp: 'Skein log lines always carry a timestamp',
  log_timestamp_format: 'Skein log lines always carry a timestamp',
  log_facility: 'Skein does not log to syslog',
  connection_messages: 'connections are logged at debug level',
  pid_file: 'not supported',
  user: 'Skein does not change user; run it as the user you want',
  set_tcp_nodelay: 'Skein always sets TCP_NODELAY',
  websockets_log_level: 'not applicable',
  websockets_headers_size: 'not applicable',
  http_dir: 'Skein does not serve HTTP files',
  socket_domain: 'the bind address decides the family',
  ciphers: 'Node.js default cipher suites are used',
  'ciphers_tls1.3': 'Node.js default cipher suites are used',
  dhparamfile: 'not supported',
  capath: 'not supported; use cafile',
  psk_hint: 'TLS-PSK is not supported',
  psk_file: 'TLS-PSK is not supported',
  mount_point: 'not supported',
  per_listener_settings: 'not supported; authentication settings are global',
  use_username_as_clientid: 'not supported',
  bind_interface: 'not supported; use the listener address',
  check_retain_source: 'not supported',
  upgrade_outgoing_qos: 'not supported',
  memory_limit: 'not supported',
  max_inflight_bytes: 'not supported; max_inflight_messages applies',
  clientid_prefixes: 'not supported',
  plugin: 'Mosquitto plugins cannot be loaded',
  auth_plugin: 'Mosquitto plugins cannot be loaded',
  global_plugin: 'Mosquitto plugins cannot be loaded',
  require_certificate_crl: 'not supported',
  accept_protocol_versions: 'not supported; 3.1, 3.1.1 and 5.0 are accepted',
  global_max_clients: 'not supported; use limits.maxConnections',
  enable_control_api: 'not supported',
  use_subject_as_username_and_password: 'not supported',
};

/** Options that apply to the current listener. */
const LISTENER_OPTIONS = new Set([
  'protocol', 'cafile', 'certfile', 'keyfile', 'crlfile', 'require_certificate', 'use_identity_as_username',
  'use_subject_as_username', 'tls_version', 'max_connections', 'enable_proxy_protocol', 'enable_proxy_protocol_v2',
]);

/** Options handled by `parseMosquittoConf` (mapped or warned about by name). */
const KNOWN_OPTIONS = new Set([
  ...BRIDGE_OPTIONS,
  ...Object.keys(IGNORED),
  ...LISTENER_OPTIONS,
  'connection', 'listener', 'port', 'bind_address', 'allow_anonymous', 'password_file', 'acl_file', 'persistence',
  'persistence_location', 'max_inflight_messages', 'max_queued_messages', 'max_queued_bytes', 'max_packet_size',
  'message_size_limit', 'max_keepalive', 'max_topic_alias', 'retain_available', 'max_qos', 'queue_qos0_messages',
  'allow_zero_length_clientid', 'auto_id_prefix', 'persistent_client_expiration', 'sys_interval', 'include_dir',
]);

const PERSISTENT_CLIENT_EXPIRATION_UNITS: Record<string, number> = { h: 3600, d: 86_400, w: 604_800, m: 2_592_000, y: 31_536_000 };

const I31 = 2 ** 31 - 1;

/** True when `text` looks like a Mosquitto configuration (its first non-comment line does). */
export function looksLikeMosquittoConf(text: string): boolean {
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    // `name value` where name is a Mosquitto option (not YAML `key:`, JSON `{`, TOML `a = 1`).
    const m = /^([a-z][a-z0-9_.]*)(\s+[^=\s].*)?$/.exec(line);
    return m !== null && (KNOWN_OPTIONS.has(m[1]!) || m[1]!.startsWith('plugin_opt_') || m[1]!.startsWith('auth_opt_'));
  }
  return false;
}

/** Parses the file `file` (and its `include_dir` files). */
export function parseMosquittoConfFile(file: string): MosquittoConfResult {
  return parseMosquittoConf(readFileSync(file, 'utf8'), file);
}

/** Parses Mosquitto configuration text; `file` names it in messages and resolves nothing else. */
export function parseMosquittoConf(text: string, file = 'mosquitto.conf'): MosquittoConfResult {
  const warnings: string[] = [];
  const errors: string[] = [];
  const sources = new Map<string, string>();
  const listeners: ListenerDraft[] = [];
  let defaultListener: ListenerDraft | undefined;
  let current: ListenerDraft | undefined;
  let sawBridge = false;
  const globals = new Map<string, { value: unknown; at: string }>();

  const setGlobal = (key: string, value: unknown, at: string): void => {
    globals.set(key, { value, at });
  };
  const defaultDraft = (at: string): ListenerDraft =>
    (defaultListener ??= { port: 1883, host: '0.0.0.0', websockets: false, line: at, tls: {}, sources: new Map() });

  const parseText = (body: string, name: string, topLevel: boolean): void => {
    const lines = body.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const at = `${name}:${i + 1}`;
      const line = lines[i]!.replace(/\s+$/, '').replace(/^\s+/, '');
      if (line === '' || line.startsWith('#')) continue;
      const sp = line.search(/\s/);
      const option = sp < 0 ? line : line.slice(0, sp);
      const value = sp < 0 ? '' : line.slice(sp + 1).trim();
      const warn = (why: string): void => {
        warnings.push(`${at}: warning: option "${option}" ${why}`);
      };
      const error = (why: string): void => {
        errors.push(`${at}: error: ${why}`);
      };
      const need = (): string | undefined => {
        if (value === '') {
          error(`option "${option}" needs a value`);
          return undefined;
        }
        return value;
      };
      const bool = (): boolean | undefined => {
        const v = need();
        if (v === undefined) return undefined;
        if (v === 'true' || v === '1') return true;
        if (v === 'false' || v === '0') return false;
        error(`option "${option}" must be true or false, got "${v}"`);
        return undefined;
      };
      const int = (min: number, max: number): number | undefined => {
        const v = need();
        if (v === undefined) return undefined;
        if (!/^-?\d+$/.test(v)) {
          error(`option "${option}" must be an integer, got "${v}"`);
          return undefined;
        }
        const n = Number(v);
        if (n < min || n > max) {
          error(`option "${option}" must be between ${min} and ${max}, got ${v}`);
          return undefined;
        }
        return n;
      };
      /** The listener per-listener options apply to here. */
      const target = (): ListenerDraft => current ?? defaultDraft(at);

      if (option.startsWith('plugin_opt_') || option.startsWith('auth_opt_')) {
        warn('is not supported (Mosquitto plugins cannot be loaded); ignored');
        continue;
      }
      if (option === 'connection') {
        sawBridge = true;
        warn(`is not supported: bridges are not part of Skein; bridge "${value}" ignored`);
        continue;
      }
      if (BRIDGE_OPTIONS.has(option)) {
        warn(`is a bridge option${sawBridge ? '' : ' (outside any bridge)'}; bridges are not supported; ignored`);
        continue;
      }
      if (Object.hasOwn(IGNORED, option)) {
        warn(`is not supported (${IGNORED[option]}); ignored`);
        continue;
      }
      switch (option) {
        // ---------------------------------------------------------------- listeners
        case 'listener': {
          const parts = value.split(/\s+/).filter((s) => s !== '');
          if (parts.length === 0 || parts.length > 2) {
            error('listener needs "listener <port> [bind address]"');
            // Options up to the next listener would land on the wrong one: swallow them.
            current = { port: 0, host: '', websockets: false, line: at, tls: {}, sources: new Map(), unix: true };
            continue;
          }
          const port = /^\d+$/.test(parts[0]!) ? Number(parts[0]) : NaN;
          if (!(port >= 0 && port <= 65535)) {
            error(`listener port must be between 0 and 65535, got "${parts[0]}"`);
            current = { port: 0, host: '', websockets: false, line: at, tls: {}, sources: new Map(), unix: true };
            continue;
          }
          const addr = parts[1];
          if (port === 0 && addr !== undefined && addr.startsWith('/')) {
            warn('with a Unix socket path is not supported; this listener is ignored');
            current = { port, host: addr, websockets: false, line: at, tls: {}, sources: new Map(), unix: true };
            continue;
          }
          current = { port, host: addr ?? '0.0.0.0', websockets: false, line: at, tls: {}, sources: new Map([['port', at], ['host', at]]) };
          listeners.push(current);
          continue;
        }
        case 'port': {
          const p = int(1, 65535);
          if (p === undefined) continue;
          warn('is deprecated in Mosquitto; used as the default listener\'s port');
          const d = defaultDraft(at);
          d.port = p;
          d.sources.set('port', at);
          continue;
        }
        case 'bind_address': {
          const v = need();
          if (v === undefined) continue;
          const d = defaultDraft(at);
          d.host = v;
          d.sources.set('host', at);
          continue;
        }
        case 'protocol': {
          const v = need();
          if (v === undefined) continue;
          if (v !== 'mqtt' && v !== 'websockets') {
            error(`protocol must be "mqtt" or "websockets", got "${v}"`);
            continue;
          }
          target().websockets = v === 'websockets';
          target().sources.set('protocol', at);
          continue;
        }
        case 'cafile':
        case 'certfile':
        case 'keyfile':
        case 'crlfile': {
          const v = need();
          if (v === undefined) continue;
          const key = { cafile: 'ca', certfile: 'cert', keyfile: 'key', crlfile: 'crl' }[option]!;
          target().tls[key] = v;
          target().sources.set(`tls.${key}`, at);
          continue;
        }
        case 'require_certificate':
        case 'use_identity_as_username':
        case 'use_subject_as_username': {
          const b = bool();
          if (b === undefined) continue;
          const key = { require_certificate: 'requireCertificate', use_identity_as_username: 'useIdentityAsUsername', use_subject_as_username: 'useSubjectAsUsername' }[option]!;
          target().tls[key] = b;
          target().sources.set(`tls.${key}`, at);
          continue;
        }
        case 'tls_version': {
          const v = need();
          if (v === undefined) continue;
          if (v === 'tlsv1.2' || v === 'tlsv1.3') {
            target().tls.minVersion = v === 'tlsv1.2' ? 'TLSv1.2' : 'TLSv1.3';
            target().sources.set('tls.minVersion', at);
          } else if (v === 'tlsv1.1') {
            warn('value "tlsv1.1" is not supported (TLS 1.2 is the lowest Skein accepts); using tlsv1.2');
            target().tls.minVersion = 'TLSv1.2';
          } else error(`tls_version must be tlsv1.3, tlsv1.2 or tlsv1.1, got "${v}"`);
          continue;
        }
        case 'max_connections': {
          const n = int(-1, I31);
          if (n === undefined) continue;
          target().maxConnections = n < 0 ? 0 : n;
          target().sources.set('maxConnections', at);
          if (n === 0) warn('0 means "no limit" in Skein (Mosquitto would accept no client)');
          continue;
        }
        case 'enable_proxy_protocol': {
          const n = int(1, 2);
          if (n === undefined) continue;
          target().proxyProtocol = true;
          target().sources.set('proxyProtocol', at);
          continue;
        }
        case 'enable_proxy_protocol_v2': {
          const b = bool();
          if (b === undefined) continue;
          target().proxyProtocol = b;
          target().sources.set('proxyProtocol', at);
          continue;
        }
        // ---------------------------------------------------------------- security
        case 'allow_anonymous': {
          const b = bool();
          if (b !== undefined) setGlobal('auth.allowAnonymous', b, at);
          continue;
        }
        case 'password_file':
        case 'acl_file': {
          const v = need();
          if (v !== undefined) setGlobal(option === 'password_file' ? 'auth.passwordFile' : 'auth.aclFile', v, at);
          continue;
        }
        // ---------------------------------------------------------------- persistence
        case 'persistence': {
          const b = bool();
          if (b !== undefined) setGlobal('store.type', b ? 'embedded' : 'memory', at);
          continue;
        }
        case 'persistence_location': {
          const v = need();
          if (v !== undefined) setGlobal('dataDir', v, at);
          continue;
        }
        // ---------------------------------------------------------------- limits
        case 'max_inflight_messages': {
          const n = int(0, 65535);
          if (n !== undefined) setGlobal('limits.maxInflight', n === 0 ? 65535 : n, at);
          continue;
        }
        case 'max_queued_messages': {
          const n = int(0, I31);
          if (n !== undefined) setGlobal('limits.maxQueuedMessages', n === 0 ? I31 : n, at);
          continue;
        }
        case 'max_queued_bytes': {
          const n = int(0, Number.MAX_SAFE_INTEGER);
          if (n !== undefined) setGlobal('limits.maxQueuedBytes', n === 0 ? Number.MAX_SAFE_INTEGER : n, at);
          continue;
        }
        case 'max_packet_size': {
          const n = int(0, MQTT_MAX_PACKET_SIZE);
          if (n === undefined) continue;
          if (n > 0 && n < 20) {
            error(`max_packet_size must be 0 (no limit) or at least 20, got ${n}`);
            continue;
          }
          setGlobal('limits.maxPacketSize', n === 0 ? MQTT_MAX_PACKET_SIZE : n, at);
          continue;
        }
        case 'message_size_limit': {
          const n = int(0, MQTT_MAX_PACKET_SIZE);
          if (n === undefined) continue;
          if (n === 0) setGlobal('message_size_limit', 0, at);
          else {
            setGlobal('message_size_limit', n, at);
            warn(
              `is approximated by limits.maxPacketSize = ${Math.min(MQTT_MAX_PACKET_SIZE, n + MESSAGE_OVERHEAD)} (payload + ${MESSAGE_OVERHEAD} bytes for topic and properties), unless max_packet_size is set; a larger PUBLISH disconnects the client instead of being dropped`,
            );
          }
          continue;
        }
        case 'max_keepalive': {
          const n = int(0, 65535);
          if (n !== undefined) setGlobal('limits.maxKeepAlive', n === 0 ? 65535 : n, at);
          continue;
        }
        case 'max_topic_alias': {
          const n = int(0, 65535);
          if (n !== undefined) setGlobal('limits.topicAliasMaximum', n, at);
          if (current) warn('is per listener in Mosquitto; Skein applies it to every listener');
          continue;
        }
        // ---------------------------------------------------------------- protocol
        case 'retain_available': {
          const b = bool();
          if (b !== undefined) setGlobal('mqtt.retainAvailable', b, at);
          continue;
        }
        case 'max_qos': {
          const n = int(0, 2);
          if (n !== undefined) setGlobal('mqtt.maxQos', n, at);
          if (current) warn('is per listener in Mosquitto; Skein applies it to every listener');
          continue;
        }
        case 'queue_qos0_messages': {
          const b = bool();
          if (b !== undefined) setGlobal('mqtt.queueQos0Messages', b, at);
          continue;
        }
        case 'allow_zero_length_clientid': {
          const b = bool();
          if (b !== undefined) setGlobal('mqtt.allowZeroLengthClientId', b, at);
          continue;
        }
        case 'auto_id_prefix': {
          const v = need();
          if (v !== undefined) setGlobal('mqtt.autoIdPrefix', v, at);
          continue;
        }
        case 'persistent_client_expiration': {
          const v = need();
          if (v === undefined) continue;
          const m = /^(\d+)([hdwmy])$/.exec(v);
          if (!m) {
            error(`persistent_client_expiration must be a number with a unit h, d, w, m or y (e.g. 14d), got "${v}"`);
            continue;
          }
          setGlobal('mqtt.persistentClientExpiration', Number(m[1]) * PERSISTENT_CLIENT_EXPIRATION_UNITS[m[2]!]!, at);
          continue;
        }
        case 'sys_interval': {
          const n = int(0, 86_400);
          if (n !== undefined) setGlobal('sys.interval', n, at);
          continue;
        }
        // ---------------------------------------------------------------- files
        case 'include_dir': {
          const dir = need();
          if (dir === undefined) continue;
          if (!topLevel) {
            warn('is only read in the main configuration file (as Mosquitto does); ignored');
            continue;
          }
          let names: string[];
          try {
            names = readdirSync(dir).filter((n) => n.endsWith('.conf'));
          } catch (err) {
            error(`include_dir "${dir}": ${(err as Error).message}`);
            continue;
          }
          // Case-sensitive alphabetical order, as Mosquitto loads them.
          names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          for (const n of names) {
            const path = join(dir, n);
            let body: string;
            try {
              body = readFileSync(path, 'utf8');
            } catch (err) {
              error(`include_dir: cannot read ${path}: ${(err as Error).message}`);
              continue;
            }
            parseText(body, path, false);
          }
          continue;
        }
        default:
          warn(`is unknown${LISTENER_OPTIONS.has(option) ? '' : ' to Skein'}; ignored`);
      }
    }
  };
  parseText(text, file, true);

  // ---- assemble the Skein configuration (file form)
  const raw: Record<string, unknown> = {};
  const set = (path: string, value: unknown, at: string): void => {
    const segs = path.split('.');
    let node = raw;
    for (const s of segs.slice(0, -1)) node = (node[s] ??= {}) as Record<string, unknown>;
    node[segs[segs.length - 1]!] = value;
    sources.set(path, at);
  };

  const all = defaultListener ? [defaultListener, ...listeners] : listeners;
  const anyListener = all.length > 0;
  const out: Record<string, unknown>[] = [];
  for (const l of all) {
    if (l.unix) continue;
    const hasCert = l.tls.cert !== undefined;
    const hasKey = l.tls.key !== undefined;
    if (hasCert !== hasKey) {
      errors.push(`${l.line}: error: the listener needs both certfile and keyfile for TLS (it has only ${hasCert ? 'certfile' : 'keyfile'})`);
      continue;
    }
    const secure = hasCert && hasKey;
    if (!secure && Object.keys(l.tls).length > 0) {
      const first = Object.keys(l.tls)[0]!;
      errors.push(`${l.sources.get(`tls.${first}`) ?? l.line}: error: TLS options on a listener without certfile and keyfile`);
      continue;
    }
    const entry: Record<string, unknown> = {
      port: l.port,
      host: l.host,
      protocol: l.websockets ? (secure ? 'wss' : 'ws') : secure ? 'mqtts' : 'mqtt',
    };
    // Mosquitto's WebSocket listeners answer on any path.
    if (l.websockets) entry.path = '';
    if (l.maxConnections !== undefined) entry.maxConnections = l.maxConnections;
    if (l.proxyProtocol !== undefined) entry.proxyProtocol = l.proxyProtocol;
    if (secure) entry.tls = { ...l.tls };
    const index = out.length;
    for (const [k, at] of l.sources) sources.set(`listeners[${index}].${k}`, at);
    sources.set(`listeners[${index}]`, l.line);
    out.push(entry);
  }
  if (anyListener) {
    if (out.length > 0) raw.listeners = out;
  } else {
    // No listener: Mosquitto 2 listens on the loopback interface only, port 1883.
    raw.listeners = [{ port: 1883, host: '127.0.0.1', protocol: 'mqtt' }];
    sources.set('listeners', `${file} (no listener: Mosquitto's local-only default)`);
  }
  // Mosquitto defaults that differ from Skein's.
  set('store.type', 'memory', `${file} (Mosquitto default: persistence false)`);
  set('auth.allowAnonymous', !anyListener, `${file} (Mosquitto 2 default)`);

  for (const [key, { value, at }] of globals) {
    if (key === 'message_size_limit') continue;
    set(key, value, at);
  }
  const msl = globals.get('message_size_limit');
  if (msl && (msl.value as number) > 0 && !globals.has('limits.maxPacketSize')) {
    set('limits.maxPacketSize', Math.min(MQTT_MAX_PACKET_SIZE, (msl.value as number) + MESSAGE_OVERHEAD), msl.at);
  }
  return { raw, warnings, errors, sources };
}

/** Bytes allowed on top of `message_size_limit` for the rest of a PUBLISH (topic, properties). */
export const MESSAGE_OVERHEAD = 1024;
