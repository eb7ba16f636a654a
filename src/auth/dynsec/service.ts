/**
 * `startDynsec`: loads the Dynamic Security document, keeps the `DynsecAuthorizer` up to date and
 * answers the command API through an internal client of the broker.
 *
 * - The internal client is a `DeliveryTarget` with a non-persistent session, subscribed (in this
 *   node's routing only) to `$CONTROL/dynamic-security/#`, listed in `broker.internalClients` so it
 *   is not counted as a client; a command published on any node is
 *   handled by that node. Responses go out through `broker.publish` (QoS 0, not retained) on
 *   `$CONTROL/dynamic-security/v1/response`, so subscribers on every node get them.
 * - Single node: the JSON file is the state; rewritten after each change (temp file, fsync, rename).
 * - Cluster: the document lives in Redis (`<prefix>dynsec`, version counter `<prefix>dynsec:version`),
 *   written with a compare-and-set on the version (a lost race re-runs the commands on the newer
 *   document). A change is announced on the pub/sub channel `<prefix>dynsec:changed` with the
 *   usernames to disconnect; every node also polls the version each second (a missed
 *   announcement still reloads, and connected clients that are now disabled or deleted are
 *   disconnected). The file seeds Redis when the key is absent.
 */
import { Buffer } from 'node:buffer';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import type { Broker, DeliveryTarget } from '../../broker/broker.js';
import { Session } from '../../session/session.js';
import type { StoredMessage } from '../../store/types.js';
import type { ClientIdentity } from '../types.js';
import { INTERNAL_CLIENT_ID, type DynsecAuthorizer } from './authorizer.js';
import { CONTROL_TOPIC, RESPONSE_TOPIC, runCommands } from './commands.js';
import { cloneState, initialState, parseState, serializeState, type DynsecState } from './state.js';

const ADMINISTRATIVE_ACTION = 0x98;
const COMMAND_FILTER = '$CONTROL/dynamic-security/#';

export interface DynsecRedis {
  /** A connected command connection (the cluster bus's `cmd`). */
  client: Redis;
  /** Full key name for a name under the cluster prefix (the bus's `key`). */
  key(name: string): string;
}

export interface StartDynsecOptions {
  broker: Broker;
  authorizer: DynsecAuthorizer;
  /** Path of the JSON file (Mosquitto's `plugin_opt_config_file` format). */
  file: string;
  /** Admin client created (with the `admin` role of `mosquitto_ctrl dynsec init`) when there is no file. */
  adminUser: string;
  adminPassword: string;
  logger: Logger;
  /** Set in a cluster: the state lives in Redis. */
  redis?: DynsecRedis;
  /** Version poll period in a cluster (default 1000 ms). */
  pollMs?: number;
}

export interface DynsecService {
  /** The current state (read only). */
  readonly state: DynsecState;
  stop(): Promise<void>;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

async function loadOrInitFile(opts: StartDynsecOptions): Promise<{ state: DynsecState; created: boolean }> {
  let text: string | undefined;
  try {
    text = await readFile(opts.file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) return { state: parseState(text), created: false };
  if (!opts.adminPassword) {
    throw new Error(
      `auth.dynsec.file: ${opts.file} does not exist; set auth.dynsec.adminPassword (env SKEIN_AUTH__DYNSEC__ADMIN_PASSWORD) to create it with an admin client`,
    );
  }
  return { state: await initialState(opts.adminUser, opts.adminPassword), created: true };
}

/** SET the document if the version is still ARGV[1]; returns the new version, or -1. */
const CAS_SCRIPT = `
local v = redis.call('GET', KEYS[2])
if (v or '0') ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
local n = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], cjson.encode({version = n, kick = cjson.decode(ARGV[3])}))
return n`;

export async function startDynsec(opts: StartDynsecOptions): Promise<DynsecService> {
  const { broker, authorizer, logger } = opts;
  let state: DynsecState;
  let version = '0';
  let stopped = false;
  let subscriber: Redis | undefined;
  let poll: NodeJS.Timeout | undefined;
  const redis = opts.redis;
  const keys = redis && { doc: redis.key('dynsec'), version: redis.key('dynsec:version'), channel: redis.key('dynsec:changed') };

  const setState = (s: DynsecState) => {
    state = s;
    authorizer.state = s;
    authorizer.ready = true;
  };

  /** Closes local connections of these usernames (Mosquitto: kick by username, 0x98 in v5). */
  const kick = (usernames: Iterable<string>) => {
    const set = new Set(usernames);
    if (set.size === 0) return;
    for (const t of [...broker.targets.values()]) {
      const u = t.identity.username;
      if (u !== undefined && set.has(u) && t.identity.clientId !== INTERNAL_CLIENT_ID) {
        void t.kick(ADMINISTRATIVE_ACTION, 'administrative action').catch(() => undefined);
      }
    }
  };
  /** After a reload: clients whose dynsec entry is now disabled or gone. */
  const kickInvalid = (before: DynsecState, after: DynsecState) => {
    const out: string[] = [];
    for (const [name, c] of before.clients) {
      const now = after.clients.get(name);
      if (!now || (now.disabled && !c.disabled)) out.push(name);
    }
    kick(out);
  };

  // ---------------------------------------------------------------- load
  if (redis && keys) {
    const [doc, v] = await redis.client.mget(keys.doc, keys.version);
    if (doc === null) {
      const { state: seed } = await loadOrInitFile(opts);
      const created = await redis.client.set(keys.doc, serializeState(seed), 'NX');
      if (created === 'OK') await redis.client.incr(keys.version);
      const [doc2, v2] = await redis.client.mget(keys.doc, keys.version);
      setState(parseState(doc2!));
      version = v2 ?? '0';
      if (created === 'OK') logger.info({ file: opts.file }, 'dynamic security: document stored in Redis');
    } else {
      setState(parseState(doc));
      version = v ?? '0';
    }
  } else {
    const { state: s, created } = await loadOrInitFile(opts);
    if (created) {
      await writeAtomic(opts.file, serializeState(s));
      logger.info({ file: opts.file, adminUser: opts.adminUser }, 'dynamic security: file created');
    }
    setState(s);
  }

  const reload = async (): Promise<void> => {
    if (!redis || !keys) return;
    const [doc, v] = await redis.client.mget(keys.doc, keys.version);
    if (doc === null || v === null || v === version) return;
    const before = state;
    setState(parseState(doc));
    version = v;
    kickInvalid(before, state);
  };

  // ---------------------------------------------------------------- cluster change feed
  if (redis && keys) {
    subscriber = redis.client.duplicate();
    subscriber.on('error', (err: Error) => logger.debug({ err: err.message }, 'dynsec subscriber error'));
    subscriber.on('message', (_channel: string, text: string) => {
      let msg: { version?: number; kick?: unknown };
      try {
        msg = JSON.parse(text) as typeof msg;
      } catch {
        return;
      }
      void queue(async () => {
        if (String(msg.version) !== version) await reload();
        // cjson encodes an empty list as {}: accept both.
        const names = Array.isArray(msg.kick) ? msg.kick : [];
        kick(names.filter((n): n is string => typeof n === 'string'));
      });
    });
    await subscriber.subscribe(keys.channel);
    poll = setInterval(() => {
      void queue(reload).catch((err: unknown) => logger.warn({ err }, 'dynamic security: reload failed'));
    }, opts.pollMs ?? 1000);
    poll.unref();
  }

  // ---------------------------------------------------------------- commands (one at a time)
  let chain: Promise<unknown> = Promise.resolve();
  function queue<T>(fn: () => Promise<T>): Promise<T> {
    const p = chain.then(fn);
    chain = p.catch(() => undefined);
    return p;
  }

  const respond = async (responses: unknown[]) => {
    const message: StoredMessage = {
      id: broker.nextMessageId(),
      topic: RESPONSE_TOPIC,
      payload: Buffer.from(JSON.stringify({ responses })),
      qos: 0,
      retain: false,
      createdAt: Date.now(),
    };
    await broker.publish(message, {});
  };

  const handle = async (payload: Buffer) => {
    for (let attempt = 0; ; attempt++) {
      const next = cloneState(state);
      const result = await runCommands(next, payload);
      if (!result.changed) {
        await respond(result.responses);
        return;
      }
      if (redis && keys) {
        const n = (await redis.client.eval(
          CAS_SCRIPT,
          3,
          keys.doc,
          keys.version,
          keys.channel,
          version,
          serializeState(next),
          JSON.stringify([...result.kick]),
        )) as number;
        if (n < 0) {
          // Another node changed the document first: re-run on the newer one.
          if (attempt >= 10) throw new Error('dynamic security: too many concurrent changes');
          await reload();
          continue;
        }
        version = String(n);
        setState(next);
        kick(result.kick); // also announced; a second kick of a closed connection is harmless
      } else {
        await writeAtomic(opts.file, serializeState(next));
        setState(next);
        kick(result.kick);
      }
      await respond(result.responses);
      return;
    }
  };

  // ---------------------------------------------------------------- internal client
  const identity: ClientIdentity = { clientId: INTERNAL_CLIENT_ID, remoteAddress: 'internal', protocolVersion: 5 };
  const target: DeliveryTarget = {
    identity,
    sendQos0(message) {
      if (message.topic !== CONTROL_TOPIC || stopped) return;
      void queue(() => handle(message.payload)).catch((err: unknown) => logger.error({ err }, 'dynamic security: command failed'));
    },
    pump() {},
    async kick() {
      // Not a network client: shutdown, drain and self-fencing disconnect the clients, the command
      // handler stays until `stop()` (after self-fencing the node serves clients again).
    },
  };
  const session = new Session({ clientId: INTERNAL_CLIENT_ID, protocolVersion: 5, expiryInterval: 0 }, false, 0);
  const sub = { filter: COMMAND_FILTER, qos: 0 as const, noLocal: false, retainAsPublished: false, retainHandling: 2 as const };
  // Registered directly, not through `attach`: the cluster is not told (the subscription routes
  // this node's publishes only; each node answers the commands its clients send), and
  // `internalClients` keeps it out of the client counts ($SYS, maxConnections, cluster).
  broker.internalClients.add(INTERNAL_CLIENT_ID);
  broker.targets.set(INTERNAL_CLIENT_ID, target);
  broker.sessions.set(INTERNAL_CLIENT_ID, session);
  session.subscriptions.set(sub.filter, sub);
  broker.indexSubscriptions(INTERNAL_CLIENT_ID, [sub]);
  let registered = true;
  function unregister() {
    if (!registered) return;
    registered = false;
    broker.unindexClient(INTERNAL_CLIENT_ID, [COMMAND_FILTER]);
    if (broker.targets.get(INTERNAL_CLIENT_ID) === target) broker.targets.delete(INTERNAL_CLIENT_ID);
    if (broker.sessions.get(INTERNAL_CLIENT_ID) === session) broker.sessions.delete(INTERNAL_CLIENT_ID);
    broker.internalClients.delete(INTERNAL_CLIENT_ID);
  }

  logger.info(
    { clients: state!.clients.size, groups: state!.groups.size, roles: state!.roles.size, shared: redis !== undefined },
    'dynamic security loaded',
  );

  return {
    get state() {
      return state;
    },
    async stop() {
      stopped = true;
      unregister();
      if (poll) clearInterval(poll);
      await chain.catch(() => undefined);
      if (subscriber) await subscriber.quit().catch(() => subscriber!.disconnect());
    },
  };
}
