/**
 * Logging: pino, JSON lines, to stderr by default.
 *
 * Level policy (keep the broker quiet by default):
 * - `fatal`/`error`: the process or a subsystem cannot continue (store failure, listener error).
 * - `warn`: something an operator should look at (config fallback, slow shutdown, dropped
 *   messages because a queue limit was hit — rate-limit these).
 * - `info` (default): lifecycle events only — start-up, listening, cluster membership changes,
 *   shutdown. Never one line per client, per packet or per message.
 * - `debug`: per-connection events (connect, disconnect and reason, session taken over).
 * - `trace`: per-packet / per-message detail.
 *
 * Make component loggers with `logger.child({ component: 'session' })`; log errors as
 * `logger.error({ err }, 'what failed')` so pino serializes the stack.
 */
import fs from 'node:fs';
import { hostname } from 'node:os';
import { pino } from 'pino';
import type { LogLevel } from './config/schema.js';

export type Logger = pino.Logger;
export type { LogLevel };

export interface CreateLoggerOptions {
  /** Added to every line as `name`. */
  name?: string;
  /** Where JSON lines go. Default: stderr (fd 2). */
  destination?: NodeJS.WritableStream;
  /** Extra fields on every line (e.g. `{ nodeId }`); pid and hostname are included by default. */
  base?: Record<string, unknown>;
}

/** How long a log destination that takes nothing (a pipe nobody reads) is retried before lines
 *  are dropped. */
const BLOCKED_LOG_MS = 5_000;
/** Log lines buffered while the destination is slow; beyond this they are dropped. */
const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

/**
 * stderr, written asynchronously. pino's destination (sonic-boom) retries a write that would block
 * for ever by default, every 100 ms while buffering without limit, and at exit in a loop: a node
 * whose stderr reader stopped reading never exited on SIGTERM. Here the buffer is bounded and a
 * destination blocked for `BLOCKED_LOG_MS` loses its lines instead of the process.
 */
function stderrDestination(): ReturnType<typeof pino.destination> {
  let blockedSince = 0;
  const dest = pino.destination({
    dest: 2,
    minLength: 0,
    sync: false,
    maxLength: MAX_BUFFERED_LOG_BYTES,
    retryEAGAIN: (err: Error) => {
      if ((err as { [GIVE_UP]?: boolean })[GIVE_UP]) return false;
      const now = Date.now();
      if (blockedSince === 0) blockedSince = now;
      return now - blockedSince < BLOCKED_LOG_MS;
    },
  });
  dest.on('write', () => (blockedSince = 0));
  // Lines that could not be written; the process must not fail for its log.
  dest.on('error', () => undefined);
  dest.flushSync = boundedFlushSync(dest as unknown as { fd: number }, dest.flushSync);
  return dest;
}

/** Marks an error of `boundedFlushSync`'s write that `retryEAGAIN` must not retry. */
const GIVE_UP = Symbol('skein.log.giveUp');

/**
 * sonic-boom's `flushSync` (what pino runs at exit, e.g. after an uncaught exception) retries a
 * failed write every 100 ms for ever unless the error is EAGAIN/EBUSY, which it first offers to
 * `retryEAGAIN`. So a stderr whose reader is gone (EPIPE: `skein start 2>&1 | head -1`) kept the
 * exiting process alive for ever, writing the same line again and again. While this flush runs,
 * any other error of a write to fd 2 comes back as an EAGAIN marked GIVE_UP, which
 * `retryEAGAIN` refuses: sonic-boom then throws, and the unwritten lines are dropped. The
 * wrapper swaps `fs.writeSync` only for the length of the synchronous call.
 */
function boundedFlushSync(dest: { fd: number }, flushSync: () => void): () => void {
  return function flushSyncBounded(this: unknown): void {
    const writeSync = fs.writeSync;
    fs.writeSync = function (this: unknown, ...args: Parameters<typeof fs.writeSync>): number {
      try {
        return (writeSync as (...a: unknown[]) => number).apply(fs, args);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (args[0] !== dest.fd || code === 'EAGAIN' || code === 'EBUSY') throw err;
        throw Object.assign(new Error(`log write failed: ${code}`), { code: 'EAGAIN', [GIVE_UP]: true });
      }
    } as typeof fs.writeSync;
    try {
      flushSync.call(this);
    } catch {
      // What could not be written is lost; the process goes on (or exits) without it.
    } finally {
      fs.writeSync = writeSync;
    }
  };
}

export function createLogger(level: LogLevel = 'info', opts: CreateLoggerOptions = {}): Logger {
  const destination = opts.destination ?? stderrDestination();
  return pino(
    {
      level,
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.base !== undefined ? { base: { pid: process.pid, hostname: hostname(), ...opts.base } } : {}),
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/** A logger that discards everything (for tests and library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
