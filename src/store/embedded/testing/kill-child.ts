/**
 * Child process of the kill -9 test: `node kill-child.js <dir> <write|fsync>`.
 *
 * Opens an embedded store (small compaction threshold, so compactions happen while it runs),
 * then commits forever: groups of four concurrent publishes queued for session `keep`, each
 * followed by a 2 KiB retained message that churns the log. Prints `committed <i>` after publish i
 * resolved; the parent kills it with SIGKILL and checks that every printed commit survived.
 * Writes to stdout go straight to the pipe (synchronous for pipes on Linux).
 */
import { Buffer } from 'node:buffer';
import { writeSync } from 'node:fs';
import { EmbeddedStore } from '../embedded-store.js';

const [dir, durability] = process.argv.slice(2);
if (!dir || (durability !== 'write' && durability !== 'fsync')) {
  process.stderr.write('usage: kill-child.js <dir> <write|fsync>\n');
  process.exit(2);
}
const say = (line: string): void => {
  writeSync(1, `${line}\n`);
};

const store = new EmbeddedStore({ dir, durability, compactThresholdBytes: 64 * 1024, logger: { warn: () => undefined } });
await store.open();
await store.takeSession({ clientId: 'keep', protocolVersion: 5, expiryInterval: 0xffffffff }, false);
say('ready');
const big = Buffer.alloc(2048, 0xab);
for (let i = 1; ; i += 4) {
  await Promise.all(
    [i, i + 1, i + 2, i + 3].map(async (n) => {
      await store.commitPublish({
        message: { id: `m-${n}`, topic: 'keep/t', payload: Buffer.from(`payload ${n}`), qos: 1, retain: false, createdAt: Date.now() },
        deliveries: [{ clientId: 'keep', qos: 1, retain: false }],
      });
      say(`committed ${n}`);
    }),
  );
  await store.commitPublish({
    message: { id: `r-${i}`, topic: 'churn', payload: big, qos: 0, retain: true, createdAt: Date.now() },
    deliveries: [],
    retain: 'set',
  });
}
