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

export function createLogger(level: LogLevel = 'info', opts: CreateLoggerOptions = {}): Logger {
  const destination = opts.destination ?? pino.destination({ dest: 2, minLength: 0, sync: false });
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
