#!/usr/bin/env node
// The `skein` executable. The TypeScript sources are compiled to dist/ by `npm ci` (prepare).
import v8 from 'node:v8';
// Loads only node:v8 and node:perf_hooks, so nothing else is allocated before the freeze below.
import { freezeYoungGeneration } from '../dist/runtime/young-generation.js';

// Before any module is loaded:
// - no young-generation growth until the configuration sets its policy (limits.youngGenerationSize;
//   see src/runtime/young-generation.ts for why);
// - hot functions are optimized after a quarter of V8's default interrupt budget (67584): a fresh
//   broker reaches its steady speed sooner (measured: backlog drain 43-44k -> 46-55k msg/s,
//   10,000 connects 10.5-11.4k -> 11.6-12.3k/s; steady-state throughput unchanged; BENCHMARKS.md).
freezeYoungGeneration();
v8.setFlagsFromString('--interrupt-budget=16384');

const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`skein: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
