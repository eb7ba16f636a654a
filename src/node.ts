/**
 * The composition root: the only place that picks implementations (store, authorizer, listeners)
 * and wires them together. `startNode` is what `skein start` and the tests call.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Authorizer, EnhancedAuthMethod } from './auth/types.js';
import { createAuthorizer, hasChainSources, isReloadable, recheckSubscriptions } from './auth/chain.js';
import { Broker } from './broker/broker.js';
import type { BrokerOptions } from './broker/options.js';
import { SysPublisher } from './broker/sys.js';
import { RC } from './codec/reason-codes.js';
import type { SkeinConfig } from './config/schema.js';
import { createListener, reloadListeners } from './listeners/factory.js';
import { AbuseLimiter } from './broker/limits.js';
import { HealthServer, type Readiness } from './admin/health.js';
import { drain } from './cluster/drain.js';
import { createLogger } from './log.js';
import { ClusterBus } from './cluster/bus.js';
import { ClusterNode } from './cluster/cluster.js';
import { DynsecAuthorizer, DynsecChainAuthorizer, startDynsec, type DynsecService } from './auth/dynsec/index.js';
import { EmbeddedStore } from './store/embedded/embedded-store.js';
import { RedisStore } from './store/redis/redis-store.js';
import { MemoryStore } from './store/memory/memory-store.js';
import type { Store } from './store/types.js';
import { VERSION } from './version.js';

export interface SkeinNode {
  readonly broker: Broker;
  readonly logger: Logger;
  readonly cluster: ClusterNode | undefined;
  /** Bound addresses of the listeners, in config order. */
  readonly addresses: Array<{ port: number; host: string }>;
  /** Bound address of the HTTP health endpoint (`health.port` > 0). */
  readonly health: { port: number; host: string } | undefined;
  /** Stops accepting, disconnects clients (v5: 0x8B Server shutting down), flushes the store.
   *  Clustered: drains first (src/cluster/drain.ts): clients leave at `cluster.drainRate`/s with a
   *  Server Reference to another node, their sessions recorded as disconnected. */
  stop(): Promise<void>;
  /** Resolves when `stop()` has finished, whoever started it (signal, `POST /drain`): with the
   *  error when it failed. Never rejects. */
  readonly stopped: Promise<Error | undefined>;
  /** 'ready' | 'draining' | 'unavailable' (cut off from Redis), as `GET /ready` reports it. */
  readiness(): Readiness;
  /** SIGHUP: re-reads the password file, the ACL file and the JWT key (src/auth/chain.ts), then
   *  removes subscriptions of connected clients that are no longer allowed. Resolves with how
   *  many were removed. A file that cannot be read keeps its previous contents (logged). */
  reload(): Promise<number>;
  /** SIGHUP: re-reads the TLS listeners' certificate files (open connections keep theirs).
   *  Returns one message per listener that failed (it keeps its previous certificates). */
  reloadTls(): string[];
}

export interface NodeExtras {
  logger?: Logger;
  authorizer?: Authorizer;
  enhancedAuth?: EnhancedAuthMethod[];
}

export function brokerOptions(c: SkeinConfig): BrokerOptions {
  const l = c.limits;
  const m = c.mqtt;
  return {
    nodeId: c.nodeId,
    maxQos: m.maxQos,
    retainAvailable: m.retainAvailable,
    wildcardSubscriptionAvailable: m.wildcardSubscriptionAvailable,
    subscriptionIdentifiersAvailable: m.subscriptionIdentifiersAvailable,
    sharedSubscriptionAvailable: m.sharedSubscriptionAvailable,
    queueQos0Messages: m.queueQos0Messages,
    allowZeroLengthClientId: m.allowZeroLengthClientId,
    autoIdPrefix: m.autoIdPrefix,
    maxPacketSize: l.maxPacketSize,
    maxTopicLength: l.maxTopicLength,
    maxTopicLevels: l.maxTopicLevels,
    maxInflight: l.maxInflight,
    receiveMaximum: l.receiveMaximum,
    maxQueuedMessages: l.maxQueuedMessages,
    maxQueuedBytes: l.maxQueuedBytes,
    maxConnections: l.maxConnections,
    connectTimeoutMs: l.connectTimeoutMs,
    maxKeepAlive: l.maxKeepAliveSec,
    maxSessionExpiry: l.maxSessionExpirySec,
    topicAliasMaximum: l.topicAliasMaximum,
    maxSubscriptionsPerClient: l.maxSubscriptionsPerClient,
    persistentClientExpiration: m.persistentClientExpirationSec,
    sysIntervalMs: c.sys.intervalMs,
    maxOutputBufferBytes: l.maxOutputBufferBytes,
  };
}

export function isClustered(c: SkeinConfig): boolean {
  return c.cluster.redis !== '' || c.cluster.sentinels !== '';
}

export function parseSentinels(list: string): Array<{ host: string; port: number }> {
  if (!list) return [];
  return list.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
  });
}

function redisEndpoint(c: SkeinConfig) {
  const sentinels = parseSentinels(c.cluster.sentinels);
  return sentinels.length > 0
    ? { sentinels, sentinelName: c.cluster.sentinelName }
    : { url: c.cluster.redis };
}

function createStore(c: SkeinConfig, logger: Logger): Store {
  if (isClustered(c)) {
    return new RedisStore({
      ...redisEndpoint(c),
      keyPrefix: c.cluster.keyPrefix,
      durability: c.cluster.durability,
      replicas: c.cluster.replicas,
      logger: logger.child({ component: 'store' }),
    });
  }
  if (c.store.type === 'memory') return new MemoryStore();
  const dir = resolve(c.dataDir);
  mkdirSync(dir, { recursive: true });
  return new EmbeddedStore({
    dir,
    durability: c.store.durability,
    compactThresholdBytes: c.store.compactThreshold,
    logger: logger.child({ component: 'store' }),
  });
}

export async function startNode(config: SkeinConfig, extras: NodeExtras = {}): Promise<SkeinNode> {
  const logger = extras.logger ?? createLogger(config.logLevel, { name: 'skein' });
  // Before the store opens: a configured auth file that cannot be read stops the start.
  // Dynamic security (auth.dynsec.file) is asked first; with a password file, ACL file, JWT or
  // HTTP hook configured too, those decide what dynsec defers (src/auth/dynsec/chained.ts).
  const dynsec = !extras.authorizer && config.auth.dynsec.file ? new DynsecAuthorizer({ allowAnonymous: config.auth.allowAnonymous }) : undefined;
  const chain = extras.authorizer || (dynsec && !hasChainSources(config)) ? undefined : await createAuthorizer(config, logger.child({ component: 'auth' }));
  const authorizer: Authorizer = extras.authorizer ?? (dynsec ? (chain ? new DynsecChainAuthorizer(dynsec, chain) : dynsec) : chain!);
  const store = createStore(config, logger);
  await store.open();
  const broker = new Broker(brokerOptions(config), store, authorizer, logger);
  if (chain) chain.isConnected = (clientId) => broker.targets.has(clientId);
  let cluster: ClusterNode | undefined;
  if (isClustered(config)) {
    const first = config.listeners[0]!;
    const bus = new ClusterBus(
      {
        ...redisEndpoint(config),
        nodeId: config.nodeId,
        keyPrefix: config.cluster.keyPrefix,
        address: config.cluster.advertise || `${first.host === '0.0.0.0' ? '127.0.0.1' : first.host}:${first.port}`,
        heartbeatMs: config.cluster.heartbeatMs,
        nodeTtlMs: config.cluster.nodeTtlMs,
        leaseTtlMs: config.cluster.nodeTtlMs,
        maxStreamLength: 100_000,
      },
      logger.child({ component: 'cluster' }),
    );
    cluster = new ClusterNode(bus, broker, store, logger.child({ component: 'cluster' }));
    broker.cluster = cluster;
  }
  await broker.start();
  try {
    await cluster?.start();
  } catch (err) {
    await cluster?.stop(false).catch(() => undefined);
    await store.close();
    throw err;
  }
  let dynsecService: DynsecService | undefined;
  if (dynsec) {
    try {
      dynsecService = await startDynsec({
        broker,
        authorizer: dynsec,
        file: resolve(config.auth.dynsec.file),
        adminUser: config.auth.dynsec.adminUser,
        adminPassword: config.auth.dynsec.adminPassword,
        logger: logger.child({ component: 'dynsec' }),
        redis: cluster ? { client: cluster.bus.cmd, key: (n) => cluster!.bus.key(n) } : undefined,
      });
    } catch (err) {
      await cluster?.stop(false).catch(() => undefined);
      await store.close();
      throw err;
    }
  }
  const deps = {
    broker,
    logger,
    enhancedAuth: new Map((extras.enhancedAuth ?? []).map((m) => [m.method, m] as const)),
    limiter: new AbuseLimiter(config.limits),
  };
  const listeners = config.listeners.map((l, i) => createListener(l, i, deps, logger));
  const addresses: Array<{ port: number; host: string }> = [];
  try {
    for (const l of listeners) addresses.push(await l.listen());
  } catch (err) {
    await Promise.all(listeners.map((l) => l.stop()));
    await store.close();
    throw err;
  }
  let draining = false;
  const readiness = (): Readiness => (draining ? 'draining' : broker.acceptingConnections ? 'ready' : 'unavailable');
  let healthServer: HealthServer | undefined;
  let health: { port: number; host: string } | undefined;
  // Assigned below; the health endpoint's POST /drain calls it.
  let stop: () => Promise<void> = async () => undefined;
  if (config.health.port > 0) {
    healthServer = new HealthServer(
      { port: config.health.port, host: config.health.host },
      { readiness, drain: () => void stop().catch((err: unknown) => logger.error({ err }, 'drain failed')) },
      logger.child({ component: 'health' }),
    );
    try {
      health = await healthServer.listen();
    } catch (err) {
      await Promise.all(listeners.map((l) => l.stop()));
      await cluster?.stop(false).catch(() => undefined);
      await store.close();
      throw err;
    }
  }
  const sys = new SysPublisher(broker, VERSION, config.sys.intervalMs, cluster ? () => clusterTotals(cluster) : undefined);
  sys.start();
  logger.info({ nodeId: config.nodeId, listeners: addresses, health, store: isClustered(config) ? 'redis' : config.store.type, version: VERSION }, 'skein started');

  let stopping: Promise<void> | undefined;
  let resolveStopped!: (err: Error | undefined) => void;
  const stopped = new Promise<Error | undefined>((r) => (resolveStopped = r));
  stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      if (cluster) {
        // Readiness fails first, so the load balancer sends no new clients while they move.
        draining = true;
        await drain(broker, cluster, { ratePerSec: config.cluster.drainRate, logger });
      }
      sys.stop();
      const stoppedListening = Promise.all(listeners.map((l) => l.stop()));
      // Disconnect every client; their sessions are recorded as disconnected (wills of v5 clients
      // with a delay wait for it, as for any abnormal end).
      await Promise.all([...broker.targets.values()].map((t) => t.kick(RC.ServerShuttingDown, 'server shutting down')));
      await stoppedListening;
      await broker.close();
      await dynsecService?.stop();
      await cluster?.stop(true);
      await store.close();
      await healthServer?.close();
      logger.info('stopped');
    })().then(
      () => resolveStopped(undefined),
      (err: unknown) => {
        resolveStopped(err instanceof Error ? err : new Error(String(err)));
        throw err;
      },
    ));
  const reloadTls = () => reloadListeners(listeners, logger);
  const reload = async (): Promise<number> => {
    if (isReloadable(authorizer)) await authorizer.reload();
    return recheckSubscriptions(broker, authorizer, logger.child({ component: 'auth' }));
  };
  return { broker, logger, cluster, addresses, health, stop: () => stop(), stopped, readiness, reloadTls, reload };
}

/** `$SYS/cluster/...`: totals over all nodes, from the node registry in Redis. */
async function clusterTotals(cluster: ClusterNode): Promise<Record<string, string>> {
  const nodes = await cluster.bus.nodes();
  const alive = nodes.filter((n) => n.alive);
  return {
    '$SYS/cluster/nodes/total': String(nodes.length),
    '$SYS/cluster/nodes/alive': String(alive.length),
    '$SYS/cluster/clients/connected': String(alive.reduce((sum, n) => sum + (n.info?.clients ?? 0), 0)),
    '$SYS/cluster/lease': (await cluster.bus.leaseOwner()) ?? '',
  };
}
