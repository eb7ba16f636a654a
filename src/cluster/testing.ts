/**
 * Cluster test rig: real redis-server, real `skein start` node processes, real HAProxy, all on
 * 127.0.0.1 with ports chosen at run time. Every process is bounded in lifetime and killed by PID.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Proc, REPO_ROOT, startProc, tempDir } from '../interop/helpers.js';

import { freePort } from '../testing/ports.js';

export { freePort };

export interface NodeProc {
  id: string;
  port: number;
  proc: Proc;
}

/** Fast failure detection for tests: heartbeat 200 ms, a node is dead after 1.5 s of silence. */
export const FAST_CLUSTER_ENV = {
  SKEIN_CLUSTER__HEARTBEAT: '200ms',
  SKEIN_CLUSTER__NODE_TTL: '1500ms',
};

export async function startClusterNode(
  id: string,
  redisUrl: string,
  opts: { port?: number; env?: Record<string, string>; lifetimeMs?: number; dataDir?: string; redisArgs?: string[] } = {},
): Promise<NodeProc> {
  const port = opts.port ?? (await freePort());
  const own = opts.dataDir === undefined ? tempDir(`skein-node-${id}-`) : undefined;
  const dir = opts.dataDir ?? own!.path;
  const proc = startProc(
    process.execPath,
    [join(REPO_ROOT, 'bin/skein.js'), 'start', '-p', String(port), '--host', '127.0.0.1', '--data-dir', dir, '--node-id', id, ...(opts.redisArgs ?? ['--redis', redisUrl]), '--log-level', process.env.SKEIN_TEST_LOG ?? 'warn'],
    { env: { ...process.env, ...FAST_CLUSTER_ENV, ...(opts.env ?? {}) }, maxLifetimeMs: opts.lifetimeMs ?? 120_000 },
  );
  if (own) void proc.exited.then(() => own.remove()); // the temp data dir goes with the process
  await proc.waitForLine(/skein listening on mqtt:\/\/127\.0\.0\.1:(\d+)/, 15_000);
  return { id, port, proc };
}

export interface HaproxyFrontend {
  name: string;
  /** Servers in order; `backup` ones only take traffic when the others are down. */
  servers: Array<{ name: string; port: number; backup?: boolean }>;
}

export interface HaproxyProc {
  proc: Proc;
  ports: Record<string, number>;
}

export interface HaproxyOptions {
  /** Send a PROXY protocol header to the servers (`send-proxy` = v1, `send-proxy-v2`). */
  sendProxy?: 'v1' | 'v2';
  /** Health check: TCP connect (default), or HTTP `GET <path>` on each server's `healthPort`
   *  with `http-check disable-on-404` (as `skein lb-config` generates). */
  httpCheck?: { path: string; healthPorts: Record<string, number> };
}

/** Starts HAProxy in TCP mode: leastconn, health checks every 200 ms, sessions cut on down. */
export async function startHaproxy(frontends: HaproxyFrontend[], opts: HaproxyOptions = {}): Promise<HaproxyProc> {
  const dir = tempDir('skein-haproxy-');
  const ports: Record<string, number> = {};
  const lines = [
    'global',
    '  maxconn 2000',
    'defaults',
    '  mode tcp',
    '  timeout connect 1s',
    '  retries 2',
    '  option redispatch',
    '  timeout client 120s',
    '  timeout server 120s',
  ];
  for (const f of frontends) {
    const port = await freePort();
    ports[f.name] = port;
    lines.push(`frontend ${f.name}`, `  bind 127.0.0.1:${port}`, `  default_backend ${f.name}_nodes`);
    const proxy = opts.sendProxy === 'v1' ? ' send-proxy' : opts.sendProxy === 'v2' ? ' send-proxy-v2' : '';
    lines.push(`backend ${f.name}_nodes`, '  balance leastconn');
    if (opts.httpCheck) lines.push(`  option httpchk GET ${opts.httpCheck.path}`, '  http-check disable-on-404', '  http-check expect status 200');
    lines.push(`  default-server check inter 200 fall 1 rise 1 on-marked-down shutdown-sessions${proxy}`);
    for (const s of f.servers) {
      const hp = opts.httpCheck?.healthPorts[s.name];
      lines.push(`  server ${s.name} 127.0.0.1:${s.port}${hp !== undefined ? ` port ${hp}` : ''}${s.backup ? ' backup' : ''}`);
    }
  }
  const cfg = join(dir.path, 'haproxy.cfg');
  writeFileSync(cfg, lines.join('\n') + '\n');
  const proc = startProc('/usr/sbin/haproxy', ['-f', cfg, '-db'], { maxLifetimeMs: 180_000 });
  void proc.exited.then(() => dir.remove());
  // Ready when every frontend accepts connections.
  const deadline = Date.now() + 10_000;
  for (const port of Object.values(ports)) {
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (ok) break;
      if (Date.now() > deadline || proc.exit) throw new Error(`haproxy did not start:\n${proc.describe()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { proc, ports };
}
