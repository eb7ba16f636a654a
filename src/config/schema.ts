/**
 * The one configuration schema of Skein: the `SkeinConfig` type, its defaults and the table the
 * loader validates against (and `docs.ts` renders into README.md).
 *
 * Naming rule: keys are camelCase and the same in TypeScript and in files / environment, with ONE
 * exception: every duration carries its unit as a suffix in TypeScript (`Ms` for timers, `Sec` for
 * values that are MQTT protocol seconds), while the file key is the plain user-facing name
 * (`limits.connectTimeout: 10s` in a file is `config.limits.connectTimeoutMs === 10000`).
 * Byte sizes are always plain bytes (numbers) in TypeScript and carry no suffix.
 */
import os from 'node:os';
import { trustedProxiesProblem } from '../listeners/proxy-protocol.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LISTENER_PROTOCOLS = ['mqtt', 'mqtts', 'ws', 'wss'] as const;
export type ListenerProtocol = (typeof LISTENER_PROTOCOLS)[number];

/** Port a listener gets when its entry names no port, by protocol (1883 and 8883 are IANA's; 8083
 *  and 8084 are EMQX's WebSocket ports). */
export const DEFAULT_PORTS: Readonly<Record<ListenerProtocol, number>> = { mqtt: 1883, mqtts: 8883, ws: 8083, wss: 8084 };

export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];
/** How a `mqtt` listener accepts sockets (src/listeners/tcp.ts). */
export const SOCKET_LAYERS = ['handle', 'net'] as const;
export type SocketLayer = (typeof SOCKET_LAYERS)[number];

/** TLS settings of an `mqtts` / `wss` listener. Paths are read at start and on reload (SIGHUP). */
export interface ListenerTlsConfig {
  /** PEM server certificate (chain) file. */
  cert: string;
  /** PEM private key file. */
  key: string;
  /** PEM CA file verifying client certificates; empty = client certificates are not asked for. */
  ca: string;
  /** Lowest TLS version accepted. */
  minVersion: TlsVersion;
  /** A client must present a certificate signed by `ca` (mutual TLS). */
  requireCertificate: boolean;
  /** The Common Name of the client certificate becomes the username (Mosquitto `use_identity_as_username`). */
  useIdentityAsUsername: boolean;
  /** The certificate subject (`CN=…,OU=…,O=…`, RFC 2253) becomes the username (`use_subject_as_username`). */
  useSubjectAsUsername: boolean;
  /** PEM certificate revocation list file; empty = none. */
  crl: string;
}

export const STORE_TYPES = ['embedded', 'memory'] as const;
export type StoreType = (typeof STORE_TYPES)[number];

export const STORE_DURABILITIES = ['write', 'fsync'] as const;
export type StoreDurability = (typeof STORE_DURABILITIES)[number];

/** MQTT 5 Session Expiry Interval value meaning "never expires" [MQTT-3.1.2-23]. */
export const SESSION_EXPIRY_NEVER = 0xffffffff;
/** Largest packet MQTT can express (Remaining Length 268435455 + fixed header is capped here). */
export const MQTT_MAX_PACKET_SIZE = 268_435_455;

export interface ListenerConfig {
  /** TCP port; 0 lets the OS choose (useful in tests). */
  port: number;
  /** Address to bind. */
  host: string;
  protocol: ListenerProtocol;
  /** Expect a PROXY protocol v1/v2 header (HAProxy `send-proxy-v2`, nginx `proxy_protocol on`). */
  proxyProtocol?: boolean;
  /** Comma list of addresses/CIDRs allowed to send PROXY headers; empty = every peer. */
  trustedProxies?: string;
  /** `ws`/`wss`: HTTP path of the WebSocket endpoint; empty = any path. */
  path?: string;
  /** Connections this listener accepts at once; 0 = no limit of its own (`limits.maxConnections` still applies). */
  maxConnections?: number;
  /** `mqtt` only: `handle` = sockets on Node's libuv handles (src/connection/raw-tcp.ts), `net` = net.Server. */
  socketLayer?: SocketLayer;
  /** `mqtts`/`wss` only. */
  tls?: ListenerTlsConfig;
}

export interface StoreConfig {
  type: StoreType;
  /** `write`: acknowledged once written to the OS; `fsync`: once fsync'ed to disk. */
  durability: StoreDurability;
  /** Bytes of log after which the embedded store compacts. */
  compactThreshold: number;
}

export interface LimitsConfig {
  /** Bytes; largest packet accepted (announced as Maximum Packet Size in MQTT 5). */
  maxPacketSize: number;
  /** Bytes (UTF-8) of a topic name or filter. */
  maxTopicLength: number;
  /** Levels (`/`-separated parts) of a topic name or filter. */
  maxTopicLevels: number;
  /** Outbound QoS 1/2 window per client: unacknowledged PUBLISHes the broker sends. */
  maxInflight: number;
  /** Inbound window announced in CONNACK (Receive Maximum). */
  receiveMaximum: number;
  /** Messages queued per offline or slow session before new ones are dropped. */
  maxQueuedMessages: number;
  /** Bytes of payload queued per session before new messages are dropped. */
  maxQueuedBytes: number;
  maxOutputBufferBytes: number;
  /** Largest V8 young-generation semi-space under load, in bytes (src/runtime/young-generation.ts). */
  youngGenerationSize: number;
  /** Concurrent client connections per node. */
  maxConnections: number;
  /** Milliseconds a new connection may take to send CONNECT. */
  connectTimeoutMs: number;
  /** Seconds; the largest keep alive a client may use (larger requests are lowered, MQTT 5
   *  Server Keep Alive). */
  maxKeepAliveSec: number;
  /** Seconds; cap on Session Expiry Interval; 0xFFFFFFFF = no cap. */
  maxSessionExpirySec: number;
  /** Topic Alias Maximum announced in CONNACK; 0 disables topic aliases. */
  topicAliasMaximum: number;
  /** Subscriptions one client may hold. */
  maxSubscriptionsPerClient: number;
  /** CONNECT packets per second from one source address (IPv6: per /64); 0 = no limit. */
  connectRatePerSource: number;
  /** CONNECT packets per second on this node; 0 = no limit. */
  connectRate: number;
  /** PUBLISH packets per second from one client; 0 = no limit. */
  publishRatePerClient: number;
  /** Wildcard levels (`+`, `#`) in one subscription filter; 0 = no limit. */
  maxFilterWildcards: number;
}

export interface MqttConfig {
  /** Maximum QoS the broker grants / announces. */
  maxQos: 0 | 1 | 2;
  retainAvailable: boolean;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
  /** Queue QoS 0 messages for offline persistent sessions. */
  queueQos0Messages: boolean;
  /** Accept an empty client id (the broker assigns one). */
  allowZeroLengthClientId: boolean;
  /** Prefix of broker-assigned client ids. */
  autoIdPrefix: string;
  /** Seconds after disconnect a 3.1/3.1.1 persistent session (clean session 0) expires; 0 = never. */
  persistentClientExpirationSec: number;
}

export interface WarmupConfig {
  /** Run the JIT warm-up (src/runtime/warmup.ts) before the listeners open (`skein start`). */
  enabled: boolean;
  /** Longest the warm-up may take; it stops there and the node starts anyway. */
  timeoutMs: number;
}

export interface SysConfig {
  /** Milliseconds between `$SYS` updates; 0 disables `$SYS`. */
  intervalMs: number;
}

export const CLUSTER_DURABILITIES = ['memory', 'replicated', 'fsync'] as const;
export type ClusterDurability = (typeof CLUSTER_DURABILITIES)[number];

export interface ClusterConfig {
  /** Redis URL (`redis://host:port/db`); empty = single node with the embedded store. */
  redis: string;
  /** Redis Sentinel addresses, `host:port,host:port`; when set, used instead of `redis`. */
  sentinels: string;
  /** Name of the Sentinel-monitored primary. */
  sentinelName: string;
  /** Prefix of every Redis key the cluster uses. */
  keyPrefix: string;
  /** When a QoS 1/2 message counts as stored: Redis answered (`memory`), a replica has it
   *  (`replicated`, Redis WAIT), or Redis fsynced it (`fsync`, needs appendfsync always). */
  durability: ClusterDurability;
  /** Replicas that must confirm with `replicated`. */
  replicas: number;
  heartbeatMs: number;
  /** A node silent for this long is dead: the lease holder adopts its sessions. */
  nodeTtlMs: number;
  /** `host:port` clients use to reach this node (Server Reference, cluster status). */
  advertise: string;
  /** Clients per second disconnected while draining (SIGTERM or `POST /drain`). */
  drainRate: number;
}

export interface HealthConfig {
  /** Port of the HTTP health endpoint (`/ready`, `/live`, `POST /drain`); 0 = disabled. */
  port: number;
  /** Address the health endpoint binds. */
  host: string;
}

export interface AuthHttpConfig {
  /** URL of the HTTP authentication hook (POST per CONNECT); empty = not used. */
  url: string;
  /** Milliseconds to wait for the hook; longer = CONNACK Server unavailable. */
  timeoutMs: number;
  /** Milliseconds an answer is cached; 0 = no cache. */
  cacheTtlMs: number;
  /** Most cached answers (least recently used go first). */
  cacheSize: number;
}

export interface AuthJwtConfig {
  /** HS256 shared secret; empty = none. */
  secret: string;
  /** PEM public key (or certificate) file for RS256; empty = none. */
  publicKey: string;
  /** Claim that must equal the CONNECT user name (when one is sent); empty = not checked. */
  usernameClaim: string;
  /** Claim that must equal the client id; empty = not checked. */
  clientIdClaim: string;
  /** Claim holding `{pub: [filters], sub: [filters]}`; empty = tokens carry no ACL. */
  aclClaim: string;
}

/** Authentication and authorization (src/auth/). */
export interface AuthConfig {
  /** Let clients without user name and password in (when no authenticator is configured, they
   *  are let in from loopback anyway). */
  allowAnonymous: boolean;
  /** Mosquitto password file (`mosquitto_passwd` / `skein passwd`); empty = none. */
  passwordFile: string;
  /** Mosquitto ACL file; empty = no ACL file (everything allowed unless a client has rules). */
  aclFile: string;
  http: AuthHttpConfig;
  jwt: AuthJwtConfig;
  dynsec: AuthDynsecConfig;
}

/** Mosquitto Dynamic Security (src/auth/dynsec/). */
export interface AuthDynsecConfig {
  /** Path of the dynamic security JSON file (Mosquitto's format); empty = not used. */
  file: string;
  /** Admin client written into a new file (when `file` does not exist). */
  adminUser: string;
  /** Its password; required only to create the file. */
  adminPassword: string;
}

export interface SkeinConfig {
  /** Unique name of this node (used in `$SYS` topics, message ids and the cluster). */
  nodeId: string;
  listeners: ListenerConfig[];
  /** Directory for persistent state, relative to the working directory unless absolute. */
  dataDir: string;
  logLevel: LogLevel;
  store: StoreConfig;
  limits: LimitsConfig;
  mqtt: MqttConfig;
  sys: SysConfig;
  cluster: ClusterConfig;
  health: HealthConfig;
  auth: AuthConfig;
  warmup: WarmupConfig;
  /** Milliseconds to wait for clients and the store on shutdown before forcing exit. */
  shutdownTimeoutMs: number;
}

const MiB = 2 ** 20;

export function defaultListenerTls(): ListenerTlsConfig {
  return {
    cert: '',
    key: '',
    ca: '',
    minVersion: 'TLSv1.2',
    requireCertificate: false,
    useIdentityAsUsername: false,
    useSubjectAsUsername: false,
    crl: '',
  };
}

/** Defaults of a listener entry; the port depends on the protocol (`DEFAULT_PORTS`). */
export function defaultListener(protocol: ListenerProtocol = 'mqtt'): ListenerConfig {
  return {
    port: DEFAULT_PORTS[protocol],
    host: '0.0.0.0',
    protocol,
    proxyProtocol: false,
    trustedProxies: '',
    path: '/mqtt',
    maxConnections: 0,
    socketLayer: 'handle',
    tls: defaultListenerTls(),
  };
}

/** A fresh default configuration (a new object each call; callers may mutate it). */
export function defaultConfig(): SkeinConfig {
  return {
    nodeId: defaultNodeId(),
    listeners: [defaultListener()],
    dataDir: './data',
    logLevel: 'info',
    store: { type: 'embedded', durability: 'write', compactThreshold: 64 * MiB },
    limits: {
      maxPacketSize: 1 * MiB,
      maxTopicLength: 65535,
      maxTopicLevels: 128,
      // Large enough that a fast subscriber is never held back by round trips (20, Mosquitto's
      // default, caps one subscriber at 20 messages per round trip); an MQTT 5 client lowers it
      // with its Receive Maximum, and output to a client that does not read stops at 256 KB.
      maxInflight: 1000,
      receiveMaximum: 100,
      maxQueuedMessages: 1000,
      maxQueuedBytes: 16 * MiB,
      maxOutputBufferBytes: 1 * MiB,
      // V8's own maximum; it is reached only under message load (src/runtime/young-generation.ts).
      youngGenerationSize: 16 * MiB,
      maxConnections: 100_000,
      connectTimeoutMs: 10_000,
      maxKeepAliveSec: 65535,
      maxSessionExpirySec: SESSION_EXPIRY_NEVER,
      topicAliasMaximum: 10,
      maxSubscriptionsPerClient: 1000,
      // Off by default, as in Mosquitto: behind a load balancer without PROXY protocol every
      // client shares one source address, and a fleet reconnecting after a failover must not be
      // refused. Operators who want the protection set them (see the docs below).
      connectRatePerSource: 0,
      connectRate: 0,
      publishRatePerClient: 0,
      maxFilterWildcards: 32,
    },
    mqtt: {
      maxQos: 2,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
      queueQos0Messages: false,
      allowZeroLengthClientId: true,
      autoIdPrefix: 'auto-',
      persistentClientExpirationSec: 0,
    },
    sys: { intervalMs: 10_000 },
    cluster: {
      redis: '',
      sentinels: '',
      sentinelName: 'mymaster',
      keyPrefix: 'skein:',
      durability: 'memory',
      replicas: 1,
      heartbeatMs: 1000,
      nodeTtlMs: 3000,
      advertise: '',
      drainRate: 500,
    },
    health: { port: 0, host: '0.0.0.0' },
    auth: {
      allowAnonymous: false,
      passwordFile: '',
      aclFile: '',
      http: { url: '', timeoutMs: 2000, cacheTtlMs: 60_000, cacheSize: 10_000 },
      jwt: { secret: '', publicKey: '', usernameClaim: 'sub', clientIdClaim: '', aclClaim: '' },
      dynsec: { file: '', adminUser: 'admin', adminPassword: '' },
    },
    warmup: { enabled: true, timeoutMs: 10_000 },
    shutdownTimeoutMs: 10_000,
  };
}

/** The host name, made valid as a node id (stable across restarts, unlike anything with a pid). */
export function defaultNodeId(): string {
  const cleaned = os.hostname().replace(/[\s/+#]+/g, '-').slice(0, 255);
  return cleaned === '' ? 'skein' : cleaned;
}

// ---------------------------------------------------------------------------------------------
// The table. Keys of `fields` are the file keys; `field` is the TypeScript name when different.

interface SpecBase {
  /** One line for README.md. */
  doc: string;
  /** TypeScript property name, when it differs from the file key (durations). */
  field?: string;
  /** Default as shown in README.md, when the value depends on the machine. */
  defaultDoc?: string;
}

export interface StringSpec extends SpecBase {
  kind: 'string';
  minLength?: number;
  maxLength?: number;
  pattern?: RegExp;
  /** Message when `pattern` does not match, e.g. `must not contain "/"`. */
  patternProblem?: string;
}
export interface IntSpec extends SpecBase {
  kind: 'int';
  min: number;
  max: number;
  /** Unit word for docs and messages (`bytes`, `seconds`); omitted for plain counts. */
  unit?: string;
}
export interface BoolSpec extends SpecBase {
  kind: 'bool';
}
export interface EnumSpec extends SpecBase {
  kind: 'enum';
  values: readonly string[];
}
export interface BytesSpec extends SpecBase {
  kind: 'bytes';
  min: number;
  max: number;
}
export interface DurationSpec extends SpecBase {
  kind: 'duration';
  /** Unit of the normalized TypeScript value. A bare number in files is always seconds. */
  unit: 'ms' | 's';
  /** Bounds in milliseconds. */
  minMs: number;
  maxMs: number;
  /** 0 is accepted even though it is below `minMs`, with this meaning (e.g. `disables $SYS`). */
  zeroMeans?: string;
}
export interface ObjectSpec extends SpecBase {
  kind: 'object';
  fields: Record<string, FieldSpec>;
}
export interface ArraySpec extends SpecBase {
  kind: 'array';
  of: ObjectSpec;
  /** Defaults for missing keys of each element (TypeScript names); `raw` is the entry as written
   *  (file form), when there is one, so a default may depend on another key of it. */
  itemDefault: (raw?: Record<string, unknown>) => Record<string, unknown>;
  minItems: number;
  maxItems: number;
  /** Problems with the list as a whole (e.g. duplicates), by entry. */
  check?: (items: Record<string, unknown>[]) => { index: number; problem: string }[];
}

export type LeafSpec = StringSpec | IntSpec | BoolSpec | EnumSpec | BytesSpec | DurationSpec;
export type FieldSpec = LeafSpec | ObjectSpec | ArraySpec;

/** A comma list of IPv4/IPv6 addresses with an optional /prefix (checked exactly by the listeners' `check`). */
const TRUSTED_PROXIES_PATTERN = /^$|^\s*[0-9a-fA-F:.]+(\/\d{1,3})?\s*(,\s*[0-9a-fA-F:.]+(\/\d{1,3})?\s*)*$/;

const U16 = 65535;
const U32 = 0xffffffff;
const I31 = 2 ** 31 - 1;
const DAY_MS = 86_400_000;

export const CONFIG_SCHEMA: ObjectSpec = {
  kind: 'object',
  doc: 'Skein configuration',
  fields: {
    nodeId: {
      kind: 'string',
      minLength: 1,
      maxLength: 255,
      pattern: /^[^\s/+#]+$/,
      patternProblem: 'must not contain whitespace, "/", "+" or "#"',
      defaultDoc: 'the host name',
      doc: 'Unique name of this node, used in `$SYS` topics, message ids and the cluster.',
    },
    listeners: {
      kind: 'array',
      doc: 'Network listeners. `--port`/`--host` override the first one.',
      minItems: 1,
      maxItems: 64,
      itemDefault: (raw) => {
        const p = raw?.protocol;
        return { ...defaultListener(typeof p === 'string' && (LISTENER_PROTOCOLS as readonly string[]).includes(p) ? (p as ListenerProtocol) : 'mqtt') };
      },
      check: (items) => {
        const problems: { index: number; problem: string }[] = [];
        const seen = new Map<string, number>();
        for (let i = 0; i < items.length; i++) {
          const { host, port, trustedProxies } = items[i]!;
          const tp = typeof trustedProxies === 'string' ? trustedProxiesProblem(trustedProxies) : undefined;
          if (tp) problems.push({ index: i, problem: `trustedProxies: ${tp}` });
          for (const problem of listenerProblems(items[i] as unknown as ListenerConfig)) problems.push({ index: i, problem });
          if (port === 0) continue;
          const id = `${String(host)}:${String(port)}`;
          const first = seen.get(id);
          if (first !== undefined) problems.push({ index: i, problem: `same host and port as listeners[${first}] (${id})` });
          else seen.set(id, i);
        }
        return problems;
      },
      of: {
        kind: 'object',
        doc: 'A listener',
        fields: {
          port: { kind: 'int', min: 0, max: 65535, doc: 'TCP port; 0 lets the OS choose.' },
          host: { kind: 'string', minLength: 1, doc: 'Address to bind.' },
          protocol: {
            kind: 'enum',
            values: LISTENER_PROTOCOLS,
            doc: '`mqtt` (TCP), `mqtts` (TLS), `ws` (WebSocket, subprotocol `mqtt` or `mqttv3.1`), `wss` (WebSocket over TLS). The default port follows: 1883, 8883, 8083, 8084.',
          },
          proxyProtocol: {
            kind: 'bool',
            doc: 'Expect a PROXY protocol v1 or v2 header (HAProxy `send-proxy-v2`, nginx `proxy_protocol on`) from trusted peers; the client address it carries is the one logged and used.',
          },
          trustedProxies: {
            kind: 'string',
            pattern: TRUSTED_PROXIES_PATTERN,
            patternProblem: 'must be a comma list of IP addresses or CIDRs, e.g. "127.0.0.1,10.0.0.0/8"',
            doc: 'With `proxyProtocol`: comma list of addresses/CIDRs that must send a PROXY header; a peer outside it that sends one is closed. Empty = every peer must send one.',
          },
          path: {
            kind: 'string',
            maxLength: 1024,
            pattern: /^$|^\/[^\s?#]*$/,
            patternProblem: 'must start with "/" and contain no spaces, "?" or "#" (or be empty: any path)',
            doc: '`ws`/`wss`: HTTP path of the WebSocket endpoint; empty = any path (as Mosquitto).',
          },
          maxConnections: {
            kind: 'int',
            min: 0,
            max: I31,
            doc: 'Connections this listener holds at once (Mosquitto `max_connections`); 0 = no limit of its own (`limits.maxConnections` still applies).',
          },
          socketLayer: {
            kind: 'enum',
            values: SOCKET_LAYERS,
            doc: '`mqtt` listeners only (`net` on another protocol is a configuration error): `handle` accepts on Node\'s libuv TCP handles without a `net.Socket` per connection (about twice the connects per second; falls back to `net` with a warning where the runtime lacks them), `net` uses `net.Server`. Same behaviour either way.',
          },
          tls: {
            kind: 'object',
            doc: 'TLS of `mqtts` / `wss` listeners. Certificate, key, CA and CRL files are read again on SIGHUP (new connections get them; open ones keep theirs).',
            fields: {
              cert: { kind: 'string', doc: 'PEM server certificate (with its chain) file; required for `mqtts`/`wss`.' },
              key: { kind: 'string', doc: 'PEM private key file; required for `mqtts`/`wss`.' },
              ca: { kind: 'string', doc: 'PEM CA file that client certificates must chain to; empty = no client certificates are asked for.' },
              minVersion: { kind: 'enum', values: TLS_VERSIONS, doc: 'Lowest TLS version accepted (Mosquitto `tls_version`).' },
              requireCertificate: { kind: 'bool', doc: 'Clients must present a certificate signed by `ca` (mutual TLS); others fail the handshake.' },
              useIdentityAsUsername: {
                kind: 'bool',
                doc: 'The client certificate\'s Common Name becomes the username (the CONNECT one is ignored); a client without a valid certificate is refused (CONNACK Not authorized). Needs `ca`.',
              },
              useSubjectAsUsername: {
                kind: 'bool',
                doc: 'The client certificate\'s subject (`CN=…,OU=…,O=…`, RFC 2253 order) becomes the username. `useIdentityAsUsername` wins when both are set. Needs `ca`.',
              },
              crl: { kind: 'string', doc: 'PEM certificate revocation list checked with `ca`; empty = none.' },
            },
          },
        },
      },
    },
    dataDir: {
      kind: 'string',
      minLength: 1,
      doc: 'Directory for persistent state; relative paths are relative to the working directory.',
    },
    logLevel: {
      kind: 'enum',
      values: LOG_LEVELS,
      doc: '`info` logs lifecycle events only; per-connection and per-message logs are `debug`/`trace`.',
    },
    store: {
      kind: 'object',
      doc: 'Persistence.',
      fields: {
        type: { kind: 'enum', values: STORE_TYPES, doc: '`embedded`: on-disk store in `dataDir`; `memory`: nothing survives a restart.' },
        durability: {
          kind: 'enum',
          values: STORE_DURABILITIES,
          doc: '`write`: acknowledge once written to the OS; `fsync`: once fsync\'ed to disk.',
        },
        compactThreshold: { kind: 'bytes', min: 1, max: Number.MAX_SAFE_INTEGER, doc: 'Log size after which the embedded store compacts.' },
      },
    },
    limits: {
      kind: 'object',
      doc: 'Resource limits.',
      fields: {
        maxPacketSize: {
          kind: 'bytes',
          min: 20,
          max: MQTT_MAX_PACKET_SIZE,
          doc: 'Largest packet accepted; announced as Maximum Packet Size to MQTT 5 clients.',
        },
        maxTopicLength: { kind: 'int', min: 1, max: U16, unit: 'bytes', doc: 'Longest topic name or filter (UTF-8 bytes).' },
        maxTopicLevels: { kind: 'int', min: 1, max: U16, doc: 'Most `/`-separated levels in a topic name or filter.' },
        maxInflight: { kind: 'int', min: 1, max: U16, doc: 'Outbound QoS 1/2 window per client (unacknowledged PUBLISHes sent by the broker); an MQTT 5 client\'s Receive Maximum lowers it. Mosquitto: max_inflight_messages (default 20 there).' },
        receiveMaximum: { kind: 'int', min: 1, max: U16, doc: 'Inbound QoS 1/2 window announced in CONNACK (Receive Maximum).' },
        maxQueuedMessages: { kind: 'int', min: 0, max: I31, doc: 'Messages queued per session before new ones are dropped.' },
        maxQueuedBytes: { kind: 'bytes', min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Payload bytes queued per session before new messages are dropped.' },
        maxOutputBufferBytes: {
          kind: 'bytes',
          min: 64 * 1024,
          max: Number.MAX_SAFE_INTEGER,
          doc: 'Bytes written to one client and not yet taken by its socket above which QoS 0 messages to it are dropped (and counted); QoS 1/2 output stops at 256 KB and waits in the session queue. Bounds the memory a client that stops reading can hold.',
        },
        youngGenerationSize: {
          kind: 'bytes',
          min: 1 * MiB,
          max: 64 * MiB,
          doc: 'Largest size of the V8 young generation\'s semi-spaces (`skein start` only). They start at 1 MiB and double, up to this, only while garbage collection takes 20% of the time or more (message load), so idle connections do not pay for them; up to 2x this in memory, fixed, not per connection. 1MiB = never grow. Above 16 MiB needs `node --max-semi-space-size` too.',
        },
        maxConnections: { kind: 'int', min: 1, max: I31, doc: 'Concurrent client connections per node.' },
        connectTimeout: {
          kind: 'duration',
          field: 'connectTimeoutMs',
          unit: 'ms',
          minMs: 1,
          maxMs: DAY_MS,
          doc: 'Time a new connection has to send CONNECT.',
        },
        maxKeepAlive: {
          kind: 'duration',
          field: 'maxKeepAliveSec',
          unit: 's',
          minMs: 1000,
          maxMs: U16 * 1000,
          doc: 'Largest keep alive a client may use; larger requests are lowered (MQTT 5 Server Keep Alive).',
        },
        maxSessionExpiry: {
          kind: 'duration',
          field: 'maxSessionExpirySec',
          unit: 's',
          minMs: 0,
          maxMs: U32 * 1000,
          doc: 'Cap on the Session Expiry Interval; 4294967295 (the default) = no cap.',
        },
        topicAliasMaximum: { kind: 'int', min: 0, max: U16, doc: 'Topic Alias Maximum announced in CONNACK; 0 disables topic aliases.' },
        maxSubscriptionsPerClient: { kind: 'int', min: 1, max: I31, doc: 'Subscriptions one client may hold.' },
        connectRatePerSource: {
          kind: 'int',
          min: 0,
          max: 1_000_000,
          unit: 'per second',
          doc: 'CONNECT packets accepted per second from one source address (an IPv6 /64 counts as one), with bursts of as many; more get CONNACK 0x9F Connection rate exceeded (MQTT 5) or are closed (3.x). Behind a load balancer without PROXY protocol every client shares its address: keep it 0 there. 0 = no limit (default).',
        },
        connectRate: {
          kind: 'int',
          min: 0,
          max: 10_000_000,
          unit: 'per second',
          doc: 'CONNECT packets accepted per second on this node, from all sources (bursts of as many); answered like `connectRatePerSource`. A value a little above the expected reconnect storm protects a node that also checks passwords. 0 = no limit (default).',
        },
        publishRatePerClient: {
          kind: 'int',
          min: 0,
          max: 10_000_000,
          unit: 'per second',
          doc: 'PUBLISH packets accepted per second from one client (bursts of as many); a client going faster is disconnected (MQTT 5: DISCONNECT 0x96 Message rate too high). 0 = no limit.',
        },
        maxFilterWildcards: {
          kind: 'int',
          min: 0,
          max: U16,
          doc: 'Most wildcard levels (`+` and `#` together) in one subscription filter; a filter with more is refused (SUBACK 0x8F Topic Filter invalid, 3.1.1: 0x80). 0 = no limit.',
        },
      },
    },
    mqtt: {
      kind: 'object',
      doc: 'Protocol features.',
      fields: {
        maxQos: { kind: 'int', min: 0, max: 2, doc: 'Maximum QoS granted and announced.' },
        retainAvailable: { kind: 'bool', doc: 'Support retained messages.' },
        wildcardSubscriptionAvailable: { kind: 'bool', doc: 'Allow `+` and `#` in subscriptions.' },
        subscriptionIdentifiersAvailable: { kind: 'bool', doc: 'Support MQTT 5 subscription identifiers.' },
        sharedSubscriptionAvailable: { kind: 'bool', doc: 'Support `$share/{group}/{filter}` subscriptions.' },
        queueQos0Messages: { kind: 'bool', doc: 'Queue QoS 0 messages for offline persistent sessions.' },
        allowZeroLengthClientId: { kind: 'bool', doc: 'Accept an empty client id and assign one.' },
        autoIdPrefix: { kind: 'string', maxLength: 64, doc: 'Prefix of broker-assigned client ids.' },
        persistentClientExpiration: {
          kind: 'duration',
          field: 'persistentClientExpirationSec',
          unit: 's',
          minMs: 0,
          maxMs: U32 * 1000,
          doc: 'Expiry of MQTT 3.1/3.1.1 persistent sessions (clean session 0) after disconnect; 0 = never.',
        },
      },
    },
    sys: {
      kind: 'object',
      doc: '`$SYS` topics.',
      fields: {
        interval: {
          kind: 'duration',
          field: 'intervalMs',
          unit: 'ms',
          minMs: 1000,
          maxMs: DAY_MS,
          zeroMeans: 'disables `$SYS`',
          doc: 'Time between `$SYS` updates.',
        },
      },
    },
    cluster: {
      kind: 'object',
      doc: 'Cluster over Redis (leave `redis` and `sentinels` empty for a single node).',
      fields: {
        redis: { kind: 'string', pattern: /^$|^rediss?:\/\//, patternProblem: 'must be a redis:// or rediss:// URL', doc: 'Redis URL, e.g. `redis://127.0.0.1:6379`; empty = single node.' },
        sentinels: {
          kind: 'string',
          pattern: /^$|^[^\s,:]+:\d+(,[^\s,:]+:\d+)*$/,
          patternProblem: 'must be host:port[,host:port...]',
          doc: 'Redis Sentinel addresses `host:port,...`; used instead of `redis` when set.',
        },
        sentinelName: { kind: 'string', minLength: 1, doc: 'Name of the primary Sentinel monitors.' },
        keyPrefix: { kind: 'string', minLength: 1, maxLength: 64, doc: 'Prefix of every Redis key.' },
        durability: {
          kind: 'enum',
          values: CLUSTER_DURABILITIES,
          doc: '`memory`: Redis answered; `replicated`: a replica confirmed (WAIT); `fsync`: Redis fsynced (appendfsync always).',
        },
        replicas: { kind: 'int', min: 1, max: 16, doc: 'Replicas that must confirm with `replicated`.' },
        heartbeat: { kind: 'duration', field: 'heartbeatMs', unit: 'ms', minMs: 100, maxMs: 60_000, doc: 'Time between node heartbeats.' },
        nodeTtl: { kind: 'duration', field: 'nodeTtlMs', unit: 'ms', minMs: 300, maxMs: 600_000, doc: 'A node silent this long is dead; its sessions are adopted.' },
        advertise: { kind: 'string', doc: '`host:port` clients use to reach this node; default: the first listener.' },
        drainRate: {
          kind: 'int',
          min: 1,
          max: 1_000_000,
          unit: 'clients/second',
          doc: 'When draining (SIGTERM, `POST /drain`): clients disconnected per second (MQTT 5 ones get DISCONNECT 0x8B with another node as Server Reference), so they do not all reconnect at once.',
        },
      },
    },
    health: {
      kind: 'object',
      doc: 'HTTP health endpoint for load balancers and orchestrators: `GET /live`, `GET /ready` (200 / 503 when draining or cut off from Redis), `GET /ready/lb` (200 / 404 when draining / 503; for HAProxy `http-check disable-on-404`), `POST /drain` (from loopback only).',
      fields: {
        port: { kind: 'int', min: 0, max: 65535, doc: 'Port of the health endpoint; 0 disables it (the default, also in a cluster, so several nodes can share a host; `skein cluster up` sets one per node).' },
        host: { kind: 'string', minLength: 1, doc: 'Address the health endpoint binds.' },
      },
    },
    auth: {
      kind: 'object',
      doc: 'Authentication and authorization (Mosquitto-compatible files, JWT, HTTP hook). The password and ACL files are read again on SIGHUP; subscriptions no longer allowed are then removed.',
      fields: {
        allowAnonymous: {
          kind: 'bool',
          doc: 'Let clients without user name and password in (ACLs still apply). With no password file, JWT or HTTP hook configured, everyone is let in from loopback (127.0.0.0/8, ::1) anyway, as Mosquitto 2 without listeners; others get CONNACK 0x87 Not authorized (3.1.1: 5) unless this is true.',
        },
        passwordFile: {
          kind: 'string',
          doc: 'Mosquitto password file (`$7$` PBKDF2-SHA512 or `$6$` SHA512 lines, made by `mosquitto_passwd` or `skein passwd`); empty = none. Wrong password: CONNACK 0x86 (3.1.1: 4).',
        },
        aclFile: {
          kind: 'string',
          doc: 'Mosquitto ACL file (`user`, `topic [read|write|readwrite|deny] <filter>`, `pattern` with `%c`/`%u`); when set, what it does not grant is denied. Empty = none.',
        },
        http: {
          kind: 'object',
          doc: 'HTTP authentication hook: POST `{clientId, username, password, remoteAddress}` per CONNECT; `200 {"result":"allow"}` (optionally `superuser`, `acl`) allows, anything else denies.',
          fields: {
            url: { kind: 'string', pattern: /^$|^https?:\/\/\S+$/, patternProblem: 'must be an http:// or https:// URL', doc: 'URL of the hook; empty = not used.' },
            timeout: {
              kind: 'duration',
              field: 'timeoutMs',
              unit: 'ms',
              minMs: 1,
              maxMs: 60_000,
              doc: 'Time to wait for the hook; a timeout or connection error refuses with CONNACK 0x88 Server unavailable (3.1.1: 3).',
            },
            cacheTtl: { kind: 'duration', field: 'cacheTtlMs', unit: 'ms', minMs: 0, maxMs: DAY_MS, doc: 'Time an allow/deny answer is reused for the same client id, credentials and address; 0 = no cache.' },
            cacheSize: { kind: 'int', min: 0, max: 10_000_000, doc: 'Most cached answers; the least recently used go first.' },
          },
        },
        jwt: {
          kind: 'object',
          doc: 'JWT authentication: the CONNECT password is a signed token; expired or invalid tokens get CONNACK 0x86 (3.1.1: 4).',
          fields: {
            secret: { kind: 'string', doc: 'HS256 shared secret; empty = none.' },
            publicKey: { kind: 'string', doc: 'PEM public key (SPKI) or certificate file for RS256 tokens; empty = none.' },
            usernameClaim: { kind: 'string', maxLength: 256, doc: 'Claim that must equal the CONNECT user name, when the client sends one; empty = not checked.' },
            clientIdClaim: { kind: 'string', maxLength: 256, doc: 'Claim that must equal the client id; empty = not checked.' },
            aclClaim: {
              kind: 'string',
              maxLength: 256,
              doc: 'Claim holding the client\'s ACL `{"pub": [filters], "sub": [filters]}` (`%c`/`%u` levels replaced); a token without it is granted nothing. Empty = tokens carry no ACL.',
            },
          },
        },
        dynsec: {
          kind: 'object',
          doc: 'Mosquitto Dynamic Security: clients, groups and roles managed at run time with `mosquitto_ctrl dynsec ...` (commands on `$CONTROL/dynamic-security/v1`). When `file` is set it is asked first; the password file, ACL file, JWT and HTTP hook above decide what it defers (clients it does not know, topics its roles and default access leave open), as Mosquitto 2.0 runs `password_file`/`acl_file` after its plugins. In a cluster the document lives in Redis and changes apply on every node.',
          fields: {
            file: { kind: 'string', doc: 'Dynamic security JSON file (Mosquitto `plugin_opt_config_file` format); created with an admin client when absent. Empty = not used.' },
            adminUser: { kind: 'string', minLength: 1, doc: 'User name of the admin client (role `admin`, as `mosquitto_ctrl dynsec init`) written into a new file.' },
            adminPassword: { kind: 'string', doc: 'Password of that admin client; needed only when the file does not exist yet (env `SKEIN_AUTH__DYNSEC__ADMIN_PASSWORD`).' },
          },
        },
      },
    },
    warmup: {
      kind: 'object',
      doc: 'JIT warm-up at start (`skein start` only): before the listeners open, two private nodes on loopback ports, one after the other, carry synthetic traffic from a child process (connects; rounds of fan-in at QoS 0-2, fan-out, retained messages and a persistent session\'s 10,000-message backlog drained, until a round is no longer 10% faster) and are removed again, so the first real clients, e.g. devices reconnecting with queued messages after a failover, do not wait for V8 to compile the message path. Takes about 3 s on a fast machine, 6-10 s on a single core of a small one (bounded by `warmup.timeout`), and leaves about 35 MB more resident memory; never touches the real store or Redis.',
      fields: {
        enabled: { kind: 'bool', doc: 'Run the warm-up.' },
        timeout: {
          kind: 'duration',
          field: 'timeoutMs',
          unit: 'ms',
          minMs: 100,
          maxMs: 600_000,
          doc: 'Longest the warm-up may take; it stops there and the node starts anyway.',
        },
      },
    },
    shutdownTimeout: {
      kind: 'duration',
      field: 'shutdownTimeoutMs',
      unit: 'ms',
      minMs: 0,
      maxMs: DAY_MS,
      doc: 'Time to wait for clients and the store on shutdown before forcing exit.',
    },
  },
};

/** Problems of one (validated) listener entry that involve several of its keys. */
export function listenerProblems(l: ListenerConfig): string[] {
  const out: string[] = [];
  const secure = l.protocol === 'mqtts' || l.protocol === 'wss';
  const tls = l.tls ?? defaultListenerTls();
  if (secure && (tls.cert === '' || tls.key === '')) out.push(`protocol ${l.protocol} needs tls.cert and tls.key`);
  if (!secure) {
    const set = (['cert', 'key', 'ca', 'crl', 'requireCertificate', 'useIdentityAsUsername', 'useSubjectAsUsername'] as const).filter(
      (k) => tls[k] !== '' && tls[k] !== false,
    );
    if (set.length > 0) out.push(`tls.${set[0]} is set but protocol ${l.protocol} has no TLS (use ${l.protocol === 'ws' ? 'wss' : 'mqtts'})`);
  } else if (tls.ca === '') {
    for (const k of ['requireCertificate', 'useIdentityAsUsername', 'useSubjectAsUsername', 'crl'] as const) {
      if (tls[k]) {
        out.push(`tls.${k} needs tls.ca (the CA client certificates are checked against)`);
        break;
      }
    }
  }
  if (l.proxyProtocol && l.protocol !== 'mqtt') out.push(`proxyProtocol is only supported with protocol mqtt (terminate TLS / WebSocket at the proxy)`);
  // TLS and WebSocket listeners always sit on net.Socket (tls / ws need its stream): asking for
  // `net` elsewhere would be silently meaningless, so it is refused (the default is accepted).
  if (l.socketLayer === 'net' && l.protocol !== 'mqtt') out.push(`socketLayer applies to protocol mqtt only (${l.protocol} listeners always use net.Socket)`);
  return out;
}

/** TypeScript property name of a schema key. */
export function fieldName(key: string, spec: FieldSpec): string {
  return spec.field ?? key;
}
