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

export const LISTENER_PROTOCOLS = ['mqtt'] as const;
export type ListenerProtocol = (typeof LISTENER_PROTOCOLS)[number];

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
  /** Milliseconds to wait for clients and the store on shutdown before forcing exit. */
  shutdownTimeoutMs: number;
}

const MiB = 2 ** 20;

export function defaultListener(): ListenerConfig {
  return { port: 1883, host: '0.0.0.0', protocol: 'mqtt', proxyProtocol: false, trustedProxies: '' };
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
      maxInflight: 20,
      receiveMaximum: 100,
      maxQueuedMessages: 1000,
      maxQueuedBytes: 16 * MiB,
      maxConnections: 100_000,
      connectTimeoutMs: 10_000,
      maxKeepAliveSec: 65535,
      maxSessionExpirySec: SESSION_EXPIRY_NEVER,
      topicAliasMaximum: 10,
      maxSubscriptionsPerClient: 1000,
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
  /** Defaults for missing keys of each element (TypeScript names). */
  itemDefault: () => Record<string, unknown>;
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
      itemDefault: () => ({ ...defaultListener() }),
      check: (items) => {
        const problems: { index: number; problem: string }[] = [];
        const seen = new Map<string, number>();
        for (let i = 0; i < items.length; i++) {
          const { host, port, trustedProxies } = items[i]!;
          const tp = typeof trustedProxies === 'string' ? trustedProxiesProblem(trustedProxies) : undefined;
          if (tp) problems.push({ index: i, problem: `trustedProxies: ${tp}` });
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
          protocol: { kind: 'enum', values: LISTENER_PROTOCOLS, doc: 'Wire protocol (more to come).' },
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
        maxInflight: { kind: 'int', min: 1, max: U16, doc: 'Outbound QoS 1/2 window per client (unacknowledged PUBLISHes sent by the broker).' },
        receiveMaximum: { kind: 'int', min: 1, max: U16, doc: 'Inbound QoS 1/2 window announced in CONNACK (Receive Maximum).' },
        maxQueuedMessages: { kind: 'int', min: 0, max: I31, doc: 'Messages queued per session before new ones are dropped.' },
        maxQueuedBytes: { kind: 'bytes', min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Payload bytes queued per session before new messages are dropped.' },
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

/** TypeScript property name of a schema key. */
export function fieldName(key: string, spec: FieldSpec): string {
  return spec.field ?? key;
}
