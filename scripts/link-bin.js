#!/usr/bin/env node
// npm links the bins of dependencies into node_modules/.bin, but not the project's own `bin`.
// Linking it here (run by `npm ci` / `npm install` as postinstall) makes `npx skein ...` work in
// a fresh checkout right after `npm ci`.
import { existsSync, lstatSync, mkdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'node_modules', '.bin');
if (existsSync(join(root, 'node_modules'))) {
  mkdirSync(binDir, { recursive: true });
  const link = join(binDir, 'skein');
  try {
    if (lstatSync(link)) unlinkSync(link);
  } catch {
    /* not there yet */
  }
  symlinkSync(relative(binDir, join(root, 'bin', 'skein.js')), link);
}
