/**
 * JIT warm-up at start (`skein start`, `warmup.enabled`): before the real listeners open, private
 * nodes on loopback ports carry synthetic MQTT traffic, then are stopped and their stores removed.
 *
 * Why: V8 compiles the hot functions with TurboFan only after they have run for a while, and the
 * compile itself is CPU time (on a node pinned to one core, the compiler thread takes it from the
 * event loop). Measured on a fresh node: the first 10,000-message backlog drain of a persistent
 * session ran at 76k msg/s while 136 functions were compiled (about 780 ms of compiler time); the
 * fourth, with nothing left to compile, at 450k (BENCHMARKS.md). The first clients of a node are
 * the ones that matter in a failover (devices reconnecting with queued messages), so the node pays
 * that cost before it takes them.
 *
 * What runs (src/runtime/warmup-traffic.ts, in a worker thread): connects and disconnects, then
 * rounds of fan-in at QoS 0, 1 and 2 (MQTT 3.1.1 and 5), fan-out at QoS 1, retained messages and
 * a persistent session's queued backlog drained on reconnect, through the same listener, channel,
 * broker, codec and store classes as the real node (the embedded store in a temporary directory
 * when the node uses the embedded store, else the memory store; never the real store, never
 * Redis). Nothing of it is visible to the real node: the warm-up nodes have their own broker,
 * store, listener and counters. Bounded: fixed message counts and rounds, and `timeoutMs` for the
 * whole (it then stops where it is and the node starts anyway).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { processAlive } from '../store/embedded/files.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { defaultConfig, type SkeinConfig } from '../config/schema.js';
import { silentLogger } from '../log.js';
import { isClustered, startNode } from '../node.js';
import { WARMUP_PLAN, type RoundLimits, type TrafficResult } from './warmup-traffic.js';

export interface WarmupReport {
  /** Wall time, ms. */
  ms: number;
  /** PUBLISH packets the warm-up clients received. */
  delivered: number;
  /** Wall time of each round of mixed traffic, ms, per pass (see WARMUP_PASSES). */
  rounds: number[][];
  /** Why it stopped early, if it did. */
  stoppedEarly?: string;
}

/** The private node's configuration: defaults, loopback, anonymous, limits large enough for the plan. */
export function warmupConfig(real: SkeinConfig, dataDir: string | undefined): SkeinConfig {
  const c = defaultConfig();
  c.nodeId = `${real.nodeId}-warmup`;
  c.listeners = [{ ...c.listeners[0]!, host: '127.0.0.1', port: 0 }];
  c.logLevel = 'silent';
  c.store = dataDir !== undefined ? { ...c.store, type: 'embedded', durability: 'write' } : { ...c.store, type: 'memory' };
  if (dataDir !== undefined) c.dataDir = dataDir;
  c.limits = {
    ...real.limits,
    maxQueuedMessages: Math.max(real.limits.maxQueuedMessages, WARMUP_PLAN.backlog),
    maxQueuedBytes: Math.max(real.limits.maxQueuedBytes, WARMUP_PLAN.backlog * 1024),
    maxConnections: Math.max(real.limits.maxConnections, WARMUP_PLAN.connects + 100),
    maxInflight: Math.max(real.limits.maxInflight, WARMUP_PLAN.window),
    connectRate: 0,
    connectRatePerSource: 0,
    publishRatePerClient: 0,
  };
  c.auth.allowAnonymous = true;
  c.sys.intervalMs = real.sys.intervalMs;
  return c;
}

/**
 * The passes of the warm-up, each on a node of its own. The first runs rounds until they stop
 * getting faster. The second, one round on a fresh node, is there because V8 specializes some
 * optimized code on the objects it saw (the node's own closures and call targets): after the
 * first node is gone, the next node's first traffic deoptimized and recompiled about 90
 * functions. With a second node in between, the real node starts from code that already held
 * for two of them (first backlog drain of the real node: 166-206k msg/s after one pass,
 * 234-268k after two, 73-80k with no warm-up; BENCHMARKS.md).
 */
export const WARMUP_PASSES: readonly RoundLimits[] = [
  { min: 2, max: 8 },
  { min: 1, max: 1 },
];

/**
 * Share of `warmup.timeout` after which a pass followed by others starts no optional round: on a
 * slow core the first pass's rounds used the whole limit and the second pass never ran (21 of 70
 * starts pinned to one core of a 2 vCPU AMD EPYC VM, where the warm-up takes 8-10 s; its second
 * pass is worth more than a third or fourth round of the first, see WARMUP_PASSES).
 */
export const OPTIONAL_ROUNDS_SHARE = 0.6;

/** Runs the warm-up on private nodes; never throws (a failed warm-up only costs speed). */
export async function warmUp(real: SkeinConfig, timeoutMs: number): Promise<WarmupReport> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  const report: WarmupReport = { ms: 0, delivered: 0, rounds: [] };
  if (usesTempDir(real)) sweepStaleWarmupDirs();
  for (let i = 0; i < WARMUP_PASSES.length; i++) {
    const last = i === WARMUP_PASSES.length - 1;
    const rounds = { ...WARMUP_PASSES[i]!, optionalUntil: last ? 0 : started + OPTIONAL_ROUNDS_SHARE * timeoutMs };
    const r = await warmUpPass(real, deadline, rounds);
    report.delivered += r.delivered;
    report.rounds.push(r.rounds);
    if (r.stoppedEarly !== undefined) {
      report.stoppedEarly = r.stoppedEarly;
      break;
    }
  }
  collectGarbage();
  report.ms = Date.now() - started;
  return report;
}

/** Name of a warm-up directory of process `pid` (mkdtemp adds six characters). */
const WARMUP_DIR = /^skein-warmup-(\d+)-[A-Za-z0-9]{6}$/;

/**
 * Removes the warm-up directories in `parent` whose process is gone. A node normally removes its
 * own (at the end of the pass, or on exit after a signal), but a process that dies without
 * running its exit handlers (V8 abort, kill -9, power loss) leaves one behind, with an embedded
 * store's log in it. A directory whose PID is alive, or belongs to a process we may not signal
 * (another user's), is kept; so is anything not named like ours. Returns the names removed.
 */
export function sweepStaleWarmupDirs(parent: string = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = WARMUP_DIR.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      rmSync(join(parent, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      // Not ours to remove (permissions): leave it.
    }
  }
  return removed;
}

/** The warm-up nodes use an embedded store in a temporary directory (else a memory store). */
const usesTempDir = (real: SkeinConfig): boolean => !isClustered(real) && real.store.type === 'embedded';

async function warmUpPass(real: SkeinConfig, deadline: number, rounds: RoundLimits): Promise<TrafficResult> {
  const local = usesTempDir(real);
  const dir = local ? mkdtempSync(join(tmpdir(), `skein-warmup-${process.pid}-`)) : undefined;
  // A signal during the warm-up ends the process (see main.ts): the directory goes with it.
  const removeDir = (): void => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', removeDir);
  let result: TrafficResult = { rounds: [], delivered: 0 };
  let node: Awaited<ReturnType<typeof startNode>> | undefined;
  try {
    node = await startNode(warmupConfig(real, dir), { logger: silentLogger() });
    const port = node.addresses[0]!.port;
    const child = fork(fileURLToPath(new URL('./warmup-traffic.js', import.meta.url)), [String(port), String(deadline), String(rounds.min), String(rounds.max), String(rounds.optionalUntil ?? 0)], {
      env: { ...process.env, SKEIN_WARMUP_CHILD: '1' },
      execArgv: [],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    result = await new Promise<TrafficResult>((resolve) => {
      // The child bounds itself by the deadline; this is the backstop if it does not.
      const timer = setTimeout(
        () => resolve({ rounds: [], delivered: 0, stoppedEarly: 'out of time' }),
        Math.max(0, deadline - Date.now()) + 1000,
      );
      child.once('message', (r: TrafficResult) => {
        clearTimeout(timer);
        resolve(r);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ rounds: [], delivered: 0, stoppedEarly: `warm-up client exited (${signal ?? code})` });
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve({ rounds: [], delivered: 0, stoppedEarly: `warm-up client failed: ${err.message}` });
      });
    });
    if (child.exitCode === null) child.kill();
  } catch (err) {
    result = { ...result, stoppedEarly: `warm-up node: ${(err as Error).message}` };
  } finally {
    try {
      await node?.stop();
    } catch (err) {
      result.stoppedEarly ??= `stopping the warm-up node: ${(err as Error).message}`;
    }
    process.off('exit', removeDir);
    removeDir();
  }
  return result;
}

/**
 * One full garbage collection of what the warm-up left and no longer holds. Some of it (the
 * stopped nodes' sockets still closing) only goes at a later GC: BENCHMARKS.md, "Known effects".
 * Node exposes `gc` only behind `--expose-gc`; the flag can be set at run time and the function
 * taken from a fresh context.
 */
function collectGarbage(): void {
  try {
    v8.setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as (o?: object) => void)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  } catch {
    // Not essential: the next major GC collects it.
  }
}
