/**
 * Sizes V8's young generation (the semi-spaces where new objects are allocated) by load, at run
 * time: small while the broker mostly holds connections, larger while garbage collection of
 * short-lived per-message objects takes a large share of the time.
 *
 * Why: V8 doubles the semi-spaces (1 MiB at start, up to 16 MiB each on 64-bit Node) whenever
 * many objects survive a scavenge. Opening thousands of connections is exactly that (every
 * connection's objects survive), so a plain Node process grows its young generation by up to
 * 30 MiB during a connect storm and keeps it: more than 10,000 idle connections take themselves.
 * Under a message load the opposite holds: with 1 MiB semi-spaces the messages in flight survive
 * a few hundred scavenges a second and are promoted, and GC took half the broker's time in the
 * fan-in QoS 1 benchmark (BENCHMARKS.md). So growth is allowed only while GC is busy.
 *
 * How: `--max-semi-space-size` is only read when the heap is created, so it cannot follow the
 * configuration or the load. `--semi-space-growth-factor` is read at each growth: `bin/skein.js`
 * sets it to 1 (no growth) before anything is loaded, and `adaptYoungGeneration` watches GC
 * entries: when GC took at least `gcShare` of a window, the factor goes to 2 until the next
 * growth (one doubling), never past `maxBytes`. V8 itself shrinks the space again when the
 * allocation rate stays low. GC is observed one window per period, not all the time.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import v8 from 'node:v8';

/** Current semi-space capacity in bytes (V8 reports the new space as two semi-spaces). */
export function semiSpaceBytes(): number {
  const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return ns === undefined ? 0 : ns.space_size / 2;
}

/** Stops young-generation growth now (what bin/skein.js does first). */
export function freezeYoungGeneration(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}

/** V8 starts with 1 MiB semi-spaces but reports them as smaller until it has committed them:
 *  growth decisions count at least that. */
function committedSemiSpace(): number {
  return Math.max(semiSpaceBytes(), 2 ** 20);
}

function allowGrowth(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=2');
}

export interface YoungGenerationPolicy {
  /** Share of wall time spent in GC over one window above which one doubling is allowed. */
  gcShare: number;
  /** Length of the measurement window, ms. */
  windowMs: number;
  /**
   * One window is measured per this many ms (default 4 windows' length). Node builds an entry
   * object for every GC while 'gc' entries are observed (a few microseconds each, with hundreds
   * of scavenges a second under a message load: about 4% of the broker's time in the fan-in
   * QoS 1 benchmark when observed all the time).
   */
  periodMs?: number;
}

export const DEFAULT_POLICY: YoungGenerationPolicy = { gcShare: 0.2, windowMs: 250, periodMs: 1000 };

let observer: PerformanceObserver | undefined;
let timer: NodeJS.Timeout | undefined;

/**
 * Starts sizing the young generation by GC load, up to `maxBytes` per semi-space (1 MiB or less:
 * it never grows). Replaces an earlier call's policy.
 */
export function adaptYoungGeneration(maxBytes: number, policy: YoungGenerationPolicy = DEFAULT_POLICY): void {
  observer?.disconnect();
  observer = undefined;
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
  freezeYoungGeneration();
  if (committedSemiSpace() * 2 > maxBytes) return;
  let observing = false;
  let windowStart = 0;
  let gcMs = 0;
  let growingFrom = 0; // semi-space size when a doubling was allowed; 0 = frozen
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
    const size = committedSemiSpace();
    if (growingFrom > 0 && size > growingFrom) {
      freezeYoungGeneration(); // one doubling done
      growingFrom = 0;
    }
    const now = performance.now();
    const elapsed = now - windowStart;
    if (elapsed < policy.windowMs) return;
    if (growingFrom === 0 && gcMs >= policy.gcShare * elapsed && size * 2 <= maxBytes) {
      growingFrom = size;
      allowGrowth();
    }
    windowStart = now;
    gcMs = 0;
    // Between windows nothing is observed, except while a doubling is allowed: its end is seen.
    if (growingFrom === 0) {
      obs.disconnect();
      observing = false;
    }
  });
  const startWindow = (): void => {
    if (observing) return;
    observing = true;
    windowStart = performance.now();
    gcMs = 0;
    obs.observe({ entryTypes: ['gc'] });
  };
  observer = obs;
  startWindow();
  timer = setInterval(startWindow, policy.periodMs ?? 4 * policy.windowMs);
  timer.unref();
}
