/**
 * Cluster commands of the `skein` CLI:
 *
 *   skein lb-config --nodes host:port[@healthPort],... [--kind haproxy|nginx] [--listen PORT]
 *                   [--tls-listen PORT --tls-cert FILE] [--health-port PORT] [--keepalive S]
 *                   [--proxy-protocol]
 *   skein cluster up --nodes N [--base-port 1883] [--sentinel]
 *   skein cluster status [--redis URL | --sentinels H:P,...] [--sentinel-name NAME] [--key-prefix P]
 *
 * `cluster up` is for trying a cluster on one machine: redis-server (plus a replica and a Sentinel
 * with --sentinel), N `skein start` processes on base+1..base+N and HAProxy on the base port, all
 * on 127.0.0.1 in a temp dir; Ctrl-C stops every process it started (by PID) and removes the dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ClusterBus, type NodeInfo } from '../cluster/bus.js';
import { DEFAULT_KEEPALIVE_SEC, haproxyConfig, nginxConfig, parseNodeList, type LbOptions } from '../cluster/lb-config.js';
import { parseSentinels } from '../node.js';

const BIN = fileURLToPath(new URL('../../bin/skein.js', import.meta.url));
const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function usageError(message: string, help: string): number {
  err(`skein: ${message}\n${help}`);
  return 2;
}

function intArg(name: string, v: string | undefined, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`${name} must be an integer ${min}-${max}`);
  return Number(v);
}

// ---------------------------------------------------------------------------------------------
// skein lb-config

export const LB_HELP = `Usage: skein lb-config --nodes host:port[@healthPort],... [options]
  --kind haproxy|nginx     configuration to print (default haproxy)
  --listen PORT|HOST:PORT  where the balancer accepts MQTT (default 1883)
  --tls-listen PORT        also terminate TLS here (needs --tls-cert)
  --tls-cert FILE          PEM with certificate and key (nginx: also --tls-key FILE)
  --tls-key FILE           nginx only: key file when not in --tls-cert
  --health-port PORT       nodes' health.port: check GET /ready/lb (else a TCP check)
  --keepalive SECONDS      largest client keep alive (default ${DEFAULT_KEEPALIVE_SEC}); idle timeouts > 1.5x it
  --proxy-protocol         send the PROXY header (HAProxy v2, nginx v1); set listeners[].proxyProtocol on the nodes
`;

export function lbConfigCommand(argv: string[]): number {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string' },
        kind: { type: 'string', default: 'haproxy' },
        listen: { type: 'string', default: '1883' },
        'tls-listen': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'health-port': { type: 'string' },
        keepalive: { type: 'string' },
        'proxy-protocol': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    return usageError((e as Error).message, LB_HELP);
  }
  if (values.help) {
    out(LB_HELP);
    return 0;
  }
  try {
    if (!values.nodes) throw new Error('--nodes is required');
    if (values.kind !== 'haproxy' && values.kind !== 'nginx') throw new Error('--kind must be haproxy or nginx');
    if (!/^(\d{1,5}|[^\s]+:\d{1,5})$/.test(values.listen)) throw new Error('--listen must be PORT or HOST:PORT');
    if ((values['tls-listen'] === undefined) !== (values['tls-cert'] === undefined)) throw new Error('--tls-listen and --tls-cert go together');
    const healthPort = values['health-port'] === undefined ? undefined : intArg('--health-port', values['health-port'], 0, 1, 65535);
    const opts: LbOptions = {
      nodes: parseNodeList(values.nodes, healthPort),
      listen: values.listen,
      keepaliveSec: intArg('--keepalive', values.keepalive, DEFAULT_KEEPALIVE_SEC, 1, 65535),
      proxyProtocol: values['proxy-protocol'],
      ...(values['tls-listen'] !== undefined
        ? { tls: { listen: values['tls-listen'], certFile: values['tls-cert']!, ...(values['tls-key'] ? { keyFile: values['tls-key'] } : {}) } }
        : {}),
    };
    out(values.kind === 'nginx' ? nginxConfig(opts) : haproxyConfig(opts));
    return 0;
  } catch (e) {
    return usageError((e as Error).message, LB_HELP);
  }
}

// ---------------------------------------------------------------------------------------------
// skein cluster status

export const CLUSTER_HELP = `Usage:
  skein cluster up --nodes N [--base-port 1883] [--sentinel]
      Redis, N nodes (ports base+1..base+N, ids n1..nN) and HAProxy on the base port, on
      127.0.0.1, for trying a cluster on one machine. Ctrl-C stops everything.
  skein cluster status [--redis URL | --sentinels H:P,...] [--sentinel-name NAME] [--key-prefix P]
      Nodes (id, address, alive, clients, draining) and the lease holder, read from Redis.
`;

export async function clusterCommand(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === 'up') return clusterUp(argv.slice(1));
  if (sub === 'status') return clusterStatus(argv.slice(1));
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    out(CLUSTER_HELP);
    return sub === undefined ? 2 : 0;
  }
  return usageError(`unknown cluster command '${sub}'`, CLUSTER_HELP);
}

export interface ClusterStatus {
  nodes: Array<{ id: string; address: string; alive: boolean; clients: number; draining: boolean }>;
  leaseHolder: string | null;
}

export async function readClusterStatus(endpoint: { url?: string; sentinels?: Array<{ host: string; port: number }>; sentinelName?: string }, keyPrefix: string): Promise<ClusterStatus> {
  // A bus that is never started: it reads the registry, it does not register itself.
  const bus = new ClusterBus(
    { ...endpoint, nodeId: 'skein-cli-status', keyPrefix, address: '', heartbeatMs: 1000, nodeTtlMs: 3000, leaseTtlMs: 3000, maxStreamLength: 1 },
    pino({ level: 'silent' }),
  );
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer from Redis within 10 s')), 10_000);
    });
    try {
      return await Promise.race([
        (async () => {
          await bus.connect();
          const [nodes, leaseHolder] = await Promise.all([bus.nodes(), bus.leaseOwner()]);
          return {
            nodes: nodes
              .map((n) => ({
                id: n.id,
                address: n.info?.address ?? '',
                alive: n.alive,
                clients: n.info?.clients ?? 0,
                draining: (n.info as NodeInfo | undefined)?.draining === true,
              }))
              .sort((a, b) => a.id.localeCompare(b.id)),
            leaseHolder,
          };
        })(),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await bus.stop(false).catch(() => undefined);
  }
}

export function formatStatus(s: ClusterStatus): string {
  const rows = [['ID', 'ADDRESS', 'ALIVE', 'CLIENTS', 'DRAINING'], ...s.nodes.map((n) => [n.id, n.address || '-', n.alive ? 'yes' : 'no', String(n.clients), n.draining ? 'yes' : 'no'])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = [`nodes: ${s.nodes.length} (${s.nodes.filter((n) => n.alive).length} alive)`];
  for (const r of rows) lines.push('  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  lines.push(`lease holder: ${s.leaseHolder ?? '(none)'}`);
  const alive = s.nodes.filter((n) => n.alive);
  lines.push(`clients per node: ${alive.length === 0 ? '(no live node)' : alive.map((n) => `${n.id}=${n.clients}`).join(' ')}`);
  lines.push(`clients: ${alive.reduce((a, n) => a + n.clients, 0)}`);
  return lines.join('\n') + '\n';
}

async function clusterStatus(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        redis: { type: 'string' },
        sentinels: { type: 'string' },
        'sentinel-name': { type: 'string', default: 'mymaster' },
        'key-prefix': { type: 'string', default: 'skein:' },
        json: { type: 'boolean', default: false },
      },
    }).values;
  } catch (e) {
    return usageError((e as Error).message, CLUSTER_HELP);
  }
  const redis = values.redis ?? process.env.SKEIN_CLUSTER__REDIS ?? (values.sentinels ? undefined : 'redis://127.0.0.1:6379');
  const sentinels = parseSentinels(values.sentinels ?? '');
  if (values.sentinels && sentinels.some((s) => !s.host || !Number.isInteger(s.port))) return usageError('--sentinels must be host:port[,host:port...]', CLUSTER_HELP);
  const endpoint = sentinels.length > 0 ? { sentinels, sentinelName: values['sentinel-name'] } : { url: redis };
  try {
    const status = await readClusterStatus(endpoint, values['key-prefix']);
    out(values.json ? JSON.stringify(status) + '\n' : formatStatus(status));
    return 0;
  } catch (e) {
    err(`skein cluster status: ${(e as Error).message}\n`);
    return 1;
  }
}

// ---------------------------------------------------------------------------------------------
// skein cluster up

/** Path of an executable found in PATH (and the sbin dirs, where Debian puts haproxy). */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function osPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const t = setTimeout(() => done(false), 500);
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

interface Child {
  name: string;
  proc: ChildProcess;
  output: string;
  exited: Promise<void>;
  exitInfo?: { code: number | null; signal: NodeJS.Signals | null };
}

class Supervisor {
  readonly children: Child[] = [];
  stopping = false;

  start(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; echoStderr?: boolean } = {}): Child {
    // Own process group: a terminal Ctrl-C reaches only `cluster up`, which stops the children
    // in order (HAProxy, then nodes draining, then Redis) instead of all at once.
    const proc = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const child: Child = { name, proc, output: '', exited: Promise.resolve() };
    child.exited = new Promise<void>((resolve) => {
      proc.once('error', (e) => {
        child.output += `spawn error: ${e.message}\n`;
        child.exitInfo = { code: -1, signal: null };
        resolve();
      });
      proc.once('exit', (code, signal) => {
        child.exitInfo = { code, signal };
        if (!this.stopping) err(`skein cluster: ${name} (pid ${proc.pid}) exited unexpectedly (${signal ?? `code ${code}`})\n`);
        resolve();
      });
    });
    const collect = (d: Buffer) => {
      child.output += d.toString();
      if (child.output.length > 64 * 1024) child.output = child.output.slice(-32 * 1024); // bounded
    };
    proc.stdout!.on('data', collect);
    proc.stderr!.on('data', (d: Buffer) => {
      collect(d);
      if (opts.echoStderr) for (const line of d.toString().split('\n')) if (line) err(`[${name}] ${line}\n`);
    });
    this.children.push(child);
    return child;
  }

  /** Stops children in reverse start order: SIGTERM, SIGKILL after `graceMs`. */
  async stopAll(graceMs: number, order: (c: Child) => number = () => 0): Promise<void> {
    this.stopping = true;
    const groups = new Map<number, Child[]>();
    for (const c of this.children) groups.set(order(c), [...(groups.get(order(c)) ?? []), c]);
    for (const k of [...groups.keys()].sort((a, b) => a - b)) {
      await Promise.all(
        groups.get(k)!.map(async (c) => {
          if (c.exitInfo || c.proc.pid === undefined) return;
          try {
            process.kill(c.proc.pid, 'SIGTERM');
          } catch {
            return;
          }
          const t = setTimeout(() => {
            try {
              if (!c.exitInfo) process.kill(c.proc.pid!, 'SIGKILL');
            } catch {
              // gone
            }
          }, graceMs);
          await c.exited;
          clearTimeout(t);
        }),
      );
    }
  }
}

async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number, what: string, child?: Child): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (child?.exitInfo) throw new Error(`${what}: ${child.name} exited (${JSON.stringify(child.exitInfo)}):\n${child.output.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${ms} ms${child ? `:\n${child.output.slice(-2000)}` : ''}`);
    await sleep(50);
  }
}

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    const t = setTimeout(() => done(false), 500);
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      data += d.toString('latin1');
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
    s.once('error', () => done(false));
  });
}

async function clusterUp(argv: string[]): Promise<number> {
  let values;
  let n: number;
  let base: number;
  try {
    values = parseArgs({
      args: argv,
      options: {
        nodes: { type: 'string', default: '3' },
        'base-port': { type: 'string', default: '1883' },
        sentinel: { type: 'boolean', default: false },
        'log-level': { type: 'string', default: 'warn' },
      },
    }).values;
    n = intArg('--nodes', values.nodes, 3, 1, 32);
    base = intArg('--base-port', values['base-port'], 1883, 1, 65535 - 33);
  } catch (e) {
    return usageError((e as Error).message, CLUSTER_HELP);
  }
  const redisServer = findExecutable('redis-server');
  const haproxy = findExecutable('haproxy');
  const missing: string[] = [];
  if (!redisServer) missing.push('redis-server not found: apt-get install redis-server');
  if (!haproxy) missing.push('haproxy not found: apt-get install haproxy');
  if (missing.length > 0) {
    err(missing.map((m) => `skein cluster up: ${m}\n`).join(''));
    return 69; // EX_UNAVAILABLE
  }
  for (let p = base; p <= base + n; p++) {
    if (!(await portFree(p))) {
      err(`skein cluster up: port ${p} on 127.0.0.1 is in use (ports ${base}-${base + n} are needed; try --base-port)\n`);
      return 1;
    }
  }

  const dir = mkdtempSync(join(tmpdir(), 'skein-cluster-'));
  const sup = new Supervisor();
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    // HAProxy first (no new clients), then the nodes (they drain and deregister), then Redis.
    const rank = (c: Child) => (c.name === 'haproxy' ? 0 : c.name.startsWith('n') ? 1 : c.name === 'sentinel' ? 2 : c.name === 'redis-replica' ? 3 : 4);
    await sup.stopAll(15_000, rank);
    rmSync(dir, { recursive: true, force: true });
  };
  let interrupted = false;
  let wake: (() => void) | undefined;
  const onSignal = () => {
    interrupted = true;
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // ---- Redis (and with --sentinel a replica and a Sentinel)
    const redisPort = await osPort();
    const redisArgs = (port: number, d: string) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', d, '--logfile', ''];
    mkdirSync(join(dir, 'redis'));
    const redis = sup.start('redis', redisServer!, redisArgs(redisPort, join(dir, 'redis')));
    await waitUntil(() => redisPing(redisPort), 10_000, 'redis-server', redis);
    let nodeRedisArgs = ['--redis', `redis://127.0.0.1:${redisPort}`];
    let sentinelPort: number | undefined;
    if (values.sentinel) {
      const replicaPort = await osPort();
      mkdirSync(join(dir, 'replica'));
      const replica = sup.start('redis-replica', redisServer!, [...redisArgs(replicaPort, join(dir, 'replica')), '--replicaof', '127.0.0.1', String(redisPort)]);
      await waitUntil(() => redisPing(replicaPort), 10_000, 'redis replica', replica);
      sentinelPort = await osPort();
      mkdirSync(join(dir, 'sentinel'));
      const conf = join(dir, 'sentinel', 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${sentinelPort}`,
          'bind 127.0.0.1',
          'daemonize no',
          `dir ${join(dir, 'sentinel')}`,
          'logfile ""',
          `sentinel monitor skein 127.0.0.1 ${redisPort} 1`,
          'sentinel down-after-milliseconds skein 2000',
          'sentinel failover-timeout skein 10000',
          '',
        ].join('\n'),
      );
      const sentinel = sup.start('sentinel', redisServer!, [conf, '--sentinel']);
      await waitUntil(() => redisPing(sentinelPort!), 10_000, 'redis sentinel', sentinel);
      nodeRedisArgs = ['--sentinels', `127.0.0.1:${sentinelPort}`, '--sentinel-name', 'skein'];
    }

    // ---- nodes
    const nodes: Array<{ id: string; port: number; healthPort: number; child: Child }> = [];
    for (let i = 1; i <= n; i++) {
      const id = `n${i}`;
      const port = base + i;
      const healthPort = await osPort();
      const dataDir = join(dir, id);
      mkdirSync(dataDir);
      const child = sup.start(
        id,
        process.execPath,
        [BIN, 'start', '-p', String(port), '--host', '127.0.0.1', '--node-id', id, '--data-dir', dataDir, '--health-port', String(healthPort), '--log-level', values['log-level'], ...nodeRedisArgs],
        { env: { ...process.env, SKEIN_HEALTH__HOST: '127.0.0.1' }, echoStderr: true },
      );
      nodes.push({ id, port, healthPort, child });
    }
    // 60 s: the nodes start together and each runs its JIT warm-up (warmup.enabled) first.
    for (const node of nodes) {
      await waitUntil(() => /skein listening on mqtt:\/\//.test(node.child.output), 60_000, `node ${node.id}`, node.child);
    }

    // ---- HAProxy
    const cfg = haproxyConfig({
      nodes: nodes.map((x) => ({ name: x.id, host: '127.0.0.1', port: x.port, healthPort: x.healthPort })),
      listen: `127.0.0.1:${base}`,
      keepaliveSec: DEFAULT_KEEPALIVE_SEC,
      proxyProtocol: false,
    });
    const cfgFile = join(dir, 'haproxy.cfg');
    writeFileSync(cfgFile, cfg);
    const lb = sup.start('haproxy', haproxy!, ['-f', cfgFile, '-db']);
    await waitUntil(() => canConnect(base), 10_000, 'haproxy', lb);

    out(`skein cluster: ${n} node${n === 1 ? '' : 's'}, redis 127.0.0.1:${redisPort}${sentinelPort ? ` (sentinel 127.0.0.1:${sentinelPort}, master name skein)` : ''}, haproxy 127.0.0.1:${base} (temp dir ${dir})\n`);
    out(`  redis pid ${redis.proc.pid}\n`);
    for (const c of sup.children.filter((c) => c.name === 'redis-replica' || c.name === 'sentinel')) out(`  ${c.name} pid ${c.proc.pid}\n`);
    for (const x of nodes) out(`  node ${x.id} mqtt://127.0.0.1:${x.port} health http://127.0.0.1:${x.healthPort}/ready pid ${x.child.proc.pid}\n`);
    out(`  haproxy pid ${lb.proc.pid}\n`);
    const statusArgs = sentinelPort ? `--sentinels 127.0.0.1:${sentinelPort} --sentinel-name skein` : `--redis redis://127.0.0.1:${redisPort}`;
    out(`status: skein cluster status ${statusArgs}\n`);
    out(`connect to mqtt://127.0.0.1:${base}  (Ctrl-C stops everything)\n`);

    // ---- run until a signal
    while (!interrupted) await new Promise<void>((r) => (wake = r));
    out('skein cluster: stopping\n');
    await cleanup();
    out('skein cluster: stopped\n');
    return 0;
  } catch (e) {
    err(`skein cluster up: ${(e as Error).message}\n`);
    await cleanup();
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
