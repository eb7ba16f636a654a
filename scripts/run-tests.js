#!/usr/bin/env node
// Runs the compiled tests (dist/**/*.test.js) with node's own test runner.
// Usage: node scripts/run-tests.js [substring ...]  — only files whose path contains one of them.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2);
const files = walk('dist', []).sort().filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// Nodes the tests start (`skein start` in a child process) skip the JIT warm-up: it costs a few
// seconds of CPU per node and tests start many. src/runtime/warmup.test.ts turns it on.
const env = { SKEIN_WARMUP__ENABLED: 'false', ...process.env };
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
