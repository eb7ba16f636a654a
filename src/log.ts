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
    retryEAGAIN: () => {
      const now = Date.now();
      if (blockedSince === 0) blockedSince = now;
      return now - blockedSince < BLOCKED_LOG_MS;
    },
  });
  dest.on('write', () => (blockedSince = 0));
  // Lines that could not be written; the process must not fail for its log.
  dest.on('error', () => undefined);
  return dest;
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
