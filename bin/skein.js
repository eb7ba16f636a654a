#!/usr/bin/env node
// The `skein` executable. The TypeScript sources are compiled to dist/ by `npm ci` (prepare).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`skein: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
