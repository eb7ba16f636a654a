#!/usr/bin/env node
// The `skein` executable. The TypeScript sources are compiled to dist/ by `npm ci` (prepare).
import v8 from 'node:v8';

// Before any module is loaded: no young-generation growth until the configuration sets its cap
// (limits.youngGenerationSize; see src/runtime/young-generation.ts for why).
v8.setFlagsFromString('--semi-space-growth-factor=1');

const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`skein: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
