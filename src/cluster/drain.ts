/**
 * Graceful drain of a cluster node (design notes §3 "Draining a node"), in named steps:
 *
 *   stopAccepting   readiness fails (HAProxy stops sending new connections), new CONNECTs get
 *                   CONNACK 0x88 / 3.1.1 code 3, the heartbeat says `draining`
 *   pickReferences  live, non-draining other nodes' advertised addresses (from the registry)
 *   disconnect      at most `ratePerSec` clients per second: MQTT 5 ones get DISCONNECT 0x8B
 *                   (Server shutting down) with a Server Reference (round-robin over the others),
 *                   3.x ones are closed. Each close goes through the normal detach path, so the
 *                   session is recorded as disconnected and resumes on another node.
 *
 * The caller then stops the listeners, the cluster and the store (node.ts `stop()`).
 */
import type { Logger } from 'pino';
import type { Broker, DeliveryTarget } from '../broker/broker.js';
import { Channel } from '../channel/channel.js';
import { RC } from '../codec/reason-codes.js';
import type { ClusterNode } from './cluster.js';

export interface DrainOptions {
  /** Clients disconnected per second. */
  ratePerSec: number;
  logger: Logger;
  /** Time between batches (default 100 ms). */
  tickMs?: number;
}

export interface DrainResult {
  disconnected: number;
  serverReferences: string[];
  ms: number;
}

/** Marks the node as not accepting; keeps it so even if the cluster's Redis health flips back. */
export function stopAccepting(broker: Broker, cluster: ClusterNode | undefined): void {
  broker.acceptingConnections = false;
  if (!cluster) return;
  const bus = cluster.bus;
  bus.draining = true;
  const onHealth = bus.onHealth;
  bus.onHealth = (ok) => {
    onHealth(ok);
    broker.acceptingConnections = false; // a drain is one-way
  };
}

/** Addresses of the other live nodes that are not draining themselves. */
export async function pickReferences(cluster: ClusterNode | undefined, logger: Logger): Promise<string[]> {
  if (!cluster) return [];
  try {
    const nodes = await cluster.bus.nodes();
    return nodes
      .filter((n) => n.alive && n.id !== cluster.nodeId && n.info && !n.info.draining && n.info.address)
      .map((n) => n.info!.address)
      .sort();
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'drain: could not read the node registry; no Server Reference');
    return [];
  }
}

/** Server-initiated DISCONNECT 0x8B; with a Server Reference for MQTT 5 channels. */
export function disconnectForDrain(target: DeliveryTarget, serverReference: string | undefined): Promise<void> {
  if (target instanceof Channel && target.isV5 && target.state === 'connected' && serverReference) {
    target.send({
      cmd: 'disconnect',
      reasonCode: RC.ServerShuttingDown,
      properties: { serverReference, reasonString: 'node draining' },
    });
    return target.close('node draining');
  }
  return target.kick(RC.ServerShuttingDown, 'node draining');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs the drain; resolves when every client is disconnected and its session detached. */
export async function drain(broker: Broker, cluster: ClusterNode | undefined, opts: DrainOptions): Promise<DrainResult> {
  const started = Date.now();
  const log = opts.logger;
  stopAccepting(broker, cluster);
  const refs = await pickReferences(cluster, log);
  // perTick clients every tickMs, so that perTick / tickMs = the rate (also below 10/s).
  const perTick = Math.max(1, Math.floor((opts.ratePerSec * (opts.tickMs ?? 100)) / 1000));
  const tickMs = (perTick * 1000) / opts.ratePerSec;
  const initial = broker.clientCounts.connected;
  log.info({ clients: initial, ratePerSec: opts.ratePerSec, serverReferences: refs }, 'draining');
  const closing: Promise<void>[] = [];
  const done = new Set<DeliveryTarget>();
  let n = 0;
  // Bounded: no new connections are accepted, so the targets only shrink; the extra rounds cover
  // a takeover racing with the drain.
  const maxRounds = Math.ceil(initial / perTick) + 50;
  for (let round = 0; round < maxRounds; round++) {
    const batch = externalTargets(broker).filter((t) => !done.has(t)).slice(0, perTick);
    if (batch.length === 0) break;
    for (const t of batch) {
      done.add(t);
      const ref = refs.length > 0 ? refs[n % refs.length] : undefined;
      n++;
      closing.push(disconnectForDrain(t, ref).catch((err) => log.warn({ err }, 'drain: disconnect failed')));
    }
    if (broker.clientCounts.connected > 0) await sleep(tickMs);
  }
  // Whatever is left after the bounded rounds goes now.
  for (const t of externalTargets(broker)) {
    if (!done.has(t)) closing.push(t.kick(RC.ServerShuttingDown, 'node draining').catch(() => undefined));
  }
  await Promise.all(closing);
  const result = { disconnected: n, serverReferences: refs, ms: Date.now() - started };
  log.info(result, 'drained');
  return result;
}

/** Connected clients other than the broker's internal ones (e.g. the dynamic-security handler). */
function externalTargets(broker: Broker): DeliveryTarget[] {
  const out: DeliveryTarget[] = [];
  for (const [id, t] of broker.targets) if (!broker.internalClients.has(id)) out.push(t);
  return out;
}
