/**
 * The composition root: the only place that picks implementations (store, authorizer, listeners)
 * and wires them together. `startNode` is what `skein start` and the tests call.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { allowAll, type Authorizer, type EnhancedAuthMethod } from './auth/types.js';
import { Broker } from './broker/broker.js';
import type { BrokerOptions } from './broker/options.js';
import { SysPublisher } from './broker/sys.js';
import { RC } from './codec/reason-codes.js';
import type { SkeinConfig } from './config/schema.js';
import { TcpListener } from './listeners/tcp.js';
import { createLogger } from './log.js';
import { EmbeddedStore } from './store/embedded/embedded-store.js';
import { MemoryStore } from './store/memory/memory-store.js';
import type { Store } from './store/types.js';
import { VERSION } from './version.js';

export interface SkeinNode {
  readonly broker: Broker;
  readonly logger: Logger;
  /** Bound addresses of the listeners, in config order. */
  readonly addresses: Array<{ port: number; host: string }>;
  /** Stops accepting, disconnects clients (v5: 0x8B Server shutting down), flushes the store. */
  stop(): Promise<void>;
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
    maxOutputBufferBytes: 8 * 1024 * 1024,
  };
}

function createStore(c: SkeinConfig, logger: Logger): Store {
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
  const store = createStore(config, logger);
  await store.open();
  const broker = new Broker(brokerOptions(config), store, extras.authorizer ?? allowAll, logger);
  await broker.start();
  const deps = {
    broker,
    logger,
    enhancedAuth: new Map((extras.enhancedAuth ?? []).map((m) => [m.method, m] as const)),
  };
  const listeners = config.listeners.map((l) => new TcpListener({ port: l.port, host: l.host }, deps, logger));
  const addresses: Array<{ port: number; host: string }> = [];
  try {
    for (const l of listeners) addresses.push(await l.listen());
  } catch (err) {
    await Promise.all(listeners.map((l) => l.stop()));
    await store.close();
    throw err;
  }
  const sys = new SysPublisher(broker, VERSION, config.sys.intervalMs);
  sys.start();
  logger.info({ nodeId: config.nodeId, listeners: addresses, store: config.store.type, version: VERSION }, 'skein started');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      sys.stop();
      const stopped = Promise.all(listeners.map((l) => l.stop()));
      // Disconnect every client; their sessions are recorded as disconnected (wills of v5 clients
      // with a delay wait for it, as for any abnormal end).
      await Promise.all([...broker.targets.values()].map((t) => t.kick(RC.ServerShuttingDown, 'server shutting down')));
      await stopped;
      await broker.close();
      await store.close();
      logger.info('stopped');
    })());
  return { broker, logger, addresses, stop };
}
