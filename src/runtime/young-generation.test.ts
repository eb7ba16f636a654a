import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MiB = 2 ** 20;
const moduleUrl = new URL('./young-generation.js', import.meta.url).href;

/** Runs `body` in a fresh node (V8 flags are per process) and returns the semi-space sizes it printed. */
function run(body: string): number[] {
  const script = `
    import { freezeYoungGeneration, limitYoungGeneration, semiSpaceBytes } from ${JSON.stringify(moduleUrl)};
    const keep = [];
    // Objects that survive scavenges: what makes V8 grow its young generation.
    // About 0.5 MB per event-loop turn, as a busy broker allocates (the cap is checked after each GC,
    // so a single turn that allocates many MB could pass it by a doubling).
    const churn = async () => { for (let r = 0; r < 200; r++) { for (let i = 0; i < 5000; i++) keep.push({ i, a: [i] }); await new Promise((ok) => setImmediate(ok)); } };
    const out = [];
    ${body}
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as number[];
}

test('a frozen young generation does not grow under surviving allocations', () => {
  // V8 commits its initial 1 MiB semi-space in steps: it is there after the first churn.
  const [before, after] = run(`freezeYoungGeneration(); await churn(); out.push(semiSpaceBytes()); await churn(); await churn(); out.push(semiSpaceBytes());`);
  assert.ok(before! <= 1 * MiB, `stays at V8's initial size (${before})`);
  assert.equal(after, before);
});

test('limitYoungGeneration lets it double up to the cap and no further', () => {
  const [start, capped] = run(`freezeYoungGeneration(); out.push(limitYoungGeneration(4 * 2 ** 20)); await churn(); out.push(semiSpaceBytes());`);
  assert.ok(start! <= 1 * MiB);
  assert.ok(capped! > 1 * MiB, `grew past the initial size (${start} -> ${capped})`);
  assert.ok(capped! <= 4 * MiB, `stayed within the cap (${capped})`);
});

test('without a limit the same load grows it past the cap (the test can fail)', () => {
  const [grown] = run(`await churn(); out.push(semiSpaceBytes());`);
  assert.ok(grown! > 4 * MiB, `default V8 growth (${grown})`);
});
