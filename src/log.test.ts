/**
 * The log's stderr destination: a process whose stderr reader is gone (EPIPE) still exits. pino
 * flushes its destination synchronously at exit (here after an uncaught exception), and
 * sonic-boom's flush retried that EPIPE every 100 ms for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const LOG = fileURLToPath(new URL('./log.js', import.meta.url));

test('an exit after stderr lost its reader ends the process (no endless retry of EPIPE in the exit flush)', async () => {
  // The child logs one line, waits until the parent has closed the pipe, logs more and throws.
  const script = `
    const { createLogger } = await import(${JSON.stringify(LOG)});
    const log = createLogger('info');
    log.info('first');
    process.stdin.once('data', () => {
      for (let i = 0; i < 100; i++) log.info({ i }, 'after the reader left');
      throw new Error('crash with the log pipe closed');
    });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'ignore', 'pipe'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  await once(child.stderr!, 'data');
  child.stderr!.destroy();
  await new Promise((r) => setTimeout(r, 100));
  child.stdin!.write('go\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, signal] = await exited;
  clearTimeout(timer);
  assert.equal(signal, null, 'exited by itself, not killed after 10 s');
  assert.equal(code, 1, 'the uncaught exception ends it with status 1');
});
