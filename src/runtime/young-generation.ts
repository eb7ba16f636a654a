/**
 * Caps V8's young generation (the semi-spaces where new objects are allocated) at a configured
 * size, at run time.
 *
 * Why: V8 doubles the semi-spaces (1 MiB at start, up to 16 MiB each on 64-bit Node) whenever
 * many objects survive a scavenge. Opening thousands of connections is exactly that (every
 * connection's objects survive), so a plain Node process grows its young generation by up to
 * 30 MiB during a connect storm and keeps it: more than the connections themselves take at 10,000
 * idle clients. A broker's per-message garbage dies young, so a small young generation costs some
 * throughput (more scavenges) and no correctness; `limits.youngGenerationSize` picks the trade.
 *
 * How: `--max-semi-space-size` is only read when the heap is created, so it cannot come from the
 * configuration file. `--semi-space-growth-factor` is read at each growth, so `bin/skein.js` sets
 * it to 1 (no growth) before anything else is loaded, and `limitYoungGeneration` lets the space
 * double again until it reaches the cap, watching GC events (a growth happens only in a GC).
 */
import { PerformanceObserver } from 'node:perf_hooks';
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

let observer: PerformanceObserver | undefined;

/**
 * Lets the semi-spaces grow (doubling) while the next doubling stays within `capBytes`, then stops
 * their growth: they end at the largest doubling of their size not above the cap. The cap is
 * checked when the event loop delivers a GC's entry, so one turn that allocates several MB (two
 * GCs before the first entry is seen) can grow them by one more doubling. Growth beyond V8's own
 * maximum (16 MiB, or `--max-semi-space-size`) does not happen either way. Returns the semi-space
 * size at the time of the call.
 */
export function limitYoungGeneration(capBytes: number): number {
  observer?.disconnect();
  observer = undefined;
  const now = semiSpaceBytes();
  if (now * 2 > capBytes) {
    freezeYoungGeneration();
    return now;
  }
  v8.setFlagsFromString('--semi-space-growth-factor=2');
  const obs = new PerformanceObserver(() => {
    if (semiSpaceBytes() * 2 <= capBytes) return; // one more doubling still fits
    freezeYoungGeneration();
    obs.disconnect();
    if (observer === obs) observer = undefined;
  });
  obs.observe({ entryTypes: ['gc'] });
  observer = obs;
  return now;
}
