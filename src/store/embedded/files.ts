/**
 * File naming and small file-system helpers of the embedded store.
 *
 * A data directory holds generations: `skein-<gen>.snap` (state at the start of generation `gen`)
 * and `skein-<gen>.log` (mutations made during it), with `gen` zero-padded so names sort. See
 * README.md for the compaction sequence.
 */
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StoreError } from '../types.js';

const NAME = /^skein-(\d{10})\.(log|snap|snap\.tmp)$/;

export const logName = (gen: number): string => `skein-${String(gen).padStart(10, '0')}.log`;
export const snapName = (gen: number): string => `skein-${String(gen).padStart(10, '0')}.snap`;
export const tmpSnapName = (gen: number): string => `${snapName(gen)}.tmp`;

export interface DirListing {
  logs: number[];
  snaps: number[];
  tmps: string[];
}

/** Generations present in `dir`, ascending. */
export function listGenerations(dir: string): DirListing {
  const out: DirListing = { logs: [], snaps: [], tmps: [] };
  for (const name of readdirSync(dir)) {
    const m = NAME.exec(name);
    if (!m) continue;
    const gen = Number(m[1]);
    if (m[2] === 'log') out.logs.push(gen);
    else if (m[2] === 'snap') out.snaps.push(gen);
    else out.tmps.push(name);
  }
  out.logs.sort((a, b) => a - b);
  out.snaps.sort((a, b) => a - b);
  return out;
}

/** Makes renames, creations and deletions in `dir` durable. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const heldHere = new Set<string>();

/** Whether process `pid` exists (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Best-effort guard against two stores (in this or another live process) using one directory:
 * a `LOCK` file holding the owner's pid. A lock left by a dead process (crash, kill -9) is taken
 * over. Returns the release function.
 */
export function acquireDirLock(dir: string): () => void {
  const key = resolve(dir);
  const path = join(dir, 'LOCK');
  if (heldHere.has(key)) throw new StoreError(`store directory ${dir} is already open in this process`);
  let owner = NaN;
  try {
    owner = Number(readFileSync(path, 'utf8').trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError(`cannot read ${path}`, { cause: err });
  }
  if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
    throw new StoreError(`store directory ${dir} is in use by process ${owner}`);
  }
  writeFileSync(path, `${process.pid}\n`);
  heldHere.add(key);
  return () => {
    heldHere.delete(key);
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  };
}
