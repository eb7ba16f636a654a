import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const MiB = 2 ** 20;
const moduleUrl = new URL('./young-generation.js', import.meta.url).href;

/** Runs `body` in a fresh node (V8 flags are per process) and returns the numbers it pushed. */
function run(body: string): number[] {
  const script = `
    import { adaptYoungGeneration, freezeYoungGeneration, semiSpaceBytes } from ${JSON.stringify(moduleUrl)};
    const keep = [];
    const turn = () => new Promise((ok) => setImmediate(ok));
    // Objects that survive scavenges (what makes V8 grow its young generation), about 0.5 MB per
    // event-loop turn, for 'turns' turns.
    const churn = async (turns = 200) => { for (let r = 0; r < turns; r++) { for (let i = 0; i < 5000; i++) keep.push({ i, a: [i] }); await turn(); } };
    // Short-lived garbage only, like a broker's per-message objects, for 'ms' milliseconds.
    const garbage = async (ms) => { const end = Date.now() + ms; let x; while (Date.now() < end) { for (let i = 0; i < 5000; i++) x = { i, a: [i] }; await turn(); } return x; };
    const out = [];
    ${body}
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as number[];
}

test('a frozen young generation does not grow under surviving allocations', () => {
  // V8 commits its initial 1 MiB semi-space in steps (0.5 MiB after the first churn in some runs,
  // 1 MiB in others): frozen, it never goes past that initial size, where the same load without
  // the freeze takes it past 4 MiB (next test).
  const [before, after] = run(`freezeYoungGeneration(); await churn(); out.push(semiSpaceBytes()); await churn(); await churn(); out.push(semiSpaceBytes());`);
  assert.ok(before! <= 1 * MiB, `stays at V8's initial size (${before})`);
  assert.ok(after! <= 1 * MiB, `still at most V8's initial size after three times the load (${after})`);
});

test('without a policy the same load grows it past 4 MiB (the tests above and below can fail)', () => {
  const [grown] = run(`await churn(); out.push(semiSpaceBytes());`);
  assert.ok(grown! > 4 * MiB, `default V8 growth (${grown})`);
});

test('adaptYoungGeneration: no growth while GC is a small share of the time', () => {
  // Surviving allocations spread thin over time: GC well below the share, so no growth.
  const [size] = run(`adaptYoungGeneration(16 * 2 ** 20, { gcShare: 0.9, windowMs: 50 });
    for (let k = 0; k < 6; k++) { await churn(20); await new Promise((ok) => setTimeout(ok, 50)); }
    out.push(semiSpaceBytes());`);
  assert.ok(size! <= 1 * MiB, `stayed small (${size})`);
});

test('adaptYoungGeneration: grows under GC load, one doubling per window, never past the cap', () => {
  const [size] = run(`adaptYoungGeneration(4 * 2 ** 20, { gcShare: 0.01, windowMs: 20 });
    await churn(400); await garbage(300);
    out.push(semiSpaceBytes());`);
  assert.ok(size! > 1 * MiB, `grew (${size})`);
  assert.ok(size! <= 4 * MiB, `within the cap (${size})`);
});

test('adaptYoungGeneration with a cap of 1 MiB never grows', () => {
  const [size] = run(`adaptYoungGeneration(1 * 2 ** 20, { gcShare: 0.01, windowMs: 20 }); await churn(400); out.push(semiSpaceBytes());`);
  assert.ok(size! <= 1 * MiB, `${size}`);
});
