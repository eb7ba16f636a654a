import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { afterEach, describe, test } from 'node:test';
import { storeContract } from '../contract/suite.js';
import { dump, message, noise, populate, record, richMessage, sub } from '../contract/fixtures.js';
import { StaleEpochError, StoreError, type Store } from '../types.js';
import { decodePayload, encodeFrame, fromJsonValue, toJsonValue } from './codec.js';
import { crc32, crc32Table } from './crc32.js';
import { EmbeddedStore, type CompactionStep, type EmbeddedStoreOptions } from './embedded-store.js';
import { logName, snapName } from './files.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'skein-store-'));
  tempDirs.push(dir);
  return dir;
}
function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

for (const durability of ['write', 'fsync'] as const) {
  storeContract(`EmbeddedStore (${durability})`, async () => {
    const dir = tempDir();
    const make = (): EmbeddedStore => new EmbeddedStore({ dir, durability, logger: { warn: () => undefined } });
    return { store: make(), reopen: async () => make(), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }, { durable: true });
}

/** Compacts on close, so every reopen of the contract suite goes through a snapshot. */
class CompactOnClose extends EmbeddedStore {
  override async close(): Promise<void> {
    await this.compact().catch(() => undefined);
    await super.close();
  }
}

storeContract('EmbeddedStore (reopen from snapshot)', async () => {
  const dir = tempDir();
  const make = (): EmbeddedStore => new CompactOnClose({ dir, durability: 'write', logger: { warn: () => undefined } });
  return { store: make(), reopen: async () => make(), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
}, { durable: true });

interface Warning {
  obj: object;
  msg: string | undefined;
}

/** Opens stores on one directory, closing and cleaning up after each test. */
class Harness {
  readonly dir = tempDir();
  readonly warnings: Warning[] = [];
  private readonly open: EmbeddedStore[] = [];

  async store(opts: Partial<EmbeddedStoreOptions> = {}, dir = this.dir): Promise<EmbeddedStore> {
    const store = new EmbeddedStore({
      dir,
      durability: 'write',
      logger: { warn: (obj, msg) => this.warnings.push({ obj, msg }) },
      ...opts,
    });
    await store.open();
    this.open.push(store);
    return store;
  }

  async closeAll(): Promise<void> {
    for (const store of this.open.splice(0)) await store.close();
  }

  logPath(gen = 1): string {
    return join(this.dir, logName(gen));
  }

  logSize(gen = 1): number {
    return statSync(this.logPath(gen)).size;
  }
}

let harness: Harness;
afterEach(async () => {
  await harness?.closeAll();
  removeTempDirs();
});

async function threeCommits(store: Store): Promise<{ sizes: number[]; ids: string[] }> {
  const h = harness;
  await store.takeSession(record('c'), false);
  const sizes: number[] = [];
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const m = message('t', noise(50 + i, i + 1));
    ids.push(m.id);
    await store.commitPublish({ message: m, deliveries: [{ clientId: 'c', qos: 1, retain: false }] });
    sizes.push(h.logSize());
  }
  return { sizes, ids };
}

const queuedIds = async (store: Store, clientId = 'c'): Promise<string[]> =>
  ((await store.getSession(clientId))?.deliveries ?? []).map((d) => d.message.id);

describe('crc32 and record codec', () => {
  test('crc32 matches the standard check values', () => {
    assert.equal(crc32Table(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32Table(Buffer.alloc(0)), 0);
    assert.equal(crc32Table(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  });

  test('the table version agrees with zlib.crc32 when the runtime has it', (t) => {
    const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
    if (!native) return t.skip('zlib.crc32 not available');
    for (const len of [0, 1, 7, 64, 1000, 65_537]) {
      const data = noise(len, len + 3);
      assert.equal(crc32Table(data), native(data) >>> 0);
    }
  });

  test('JSON encoding round-trips Buffers and keys that look like markers', () => {
    const value = {
      buf: Buffer.from([0, 255, 1]),
      empty: Buffer.alloc(0),
      $b: 'a string',
      $$c: { $b: 'x', nested: [Buffer.from('y'), { $: 1 }] },
      list: ['$b', { $b: 'z' }],
      skipped: undefined,
    };
    const back = fromJsonValue(JSON.parse(JSON.stringify(toJsonValue(value))));
    const { skipped: _skipped, ...expected } = value;
    assert.deepEqual(back, expected);
  });

  test('frames carry length and checksum', () => {
    const frame = encodeFrame({ a: 'ü' });
    const length = frame.readUInt32LE(0);
    assert.equal(frame.length, 8 + length);
    assert.equal(frame.readUInt32LE(4), crc32(frame.subarray(8)));
    assert.deepEqual(decodePayload(frame.subarray(8)), { a: 'ü' });
  });
});

describe('EmbeddedStore', () => {
  test('group commit: one turn of mutations is one write and one fdatasync', async () => {
    harness = new Harness();
    const store = await harness.store({ durability: 'fsync' });
    await store.takeSession(record('c'), false);
    const before = store.stats;
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => store.commitPublish({ message: message('t', `m${i}`), deliveries: [{ clientId: 'c', qos: 1, retain: false }] })),
    );
    const after = store.stats;
    assert.equal(after.batches - before.batches, 1);
    assert.equal(after.syncs - before.syncs, 1);
    assert.equal(after.records - before.records, 100);
    assert.equal(results.length, 100);
    // write durability never syncs the log
    const other = await harness.store({ durability: 'write' }, tempDir());
    await other.takeSession(record('c'), false);
    assert.equal(other.stats.syncs, 0);
  });

  test('reads answer only once the writes they reflect are durable', async () => {
    harness = new Harness();
    const store = await harness.store({ durability: 'fsync' });
    await store.takeSession(record('c'), false);
    let committed = false;
    const commit = store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'c', qos: 1, retain: false }] }).then(() => {
      committed = true;
    });
    const snap = await store.getSession('c');
    assert.equal(snap?.deliveries.length, 1);
    assert.ok(committed, 'getSession resolved before the commit it shows was durable');
    await commit;
  });

  test('calls before open and after close are refused with StoreError; the directory is locked', async () => {
    harness = new Harness();
    const store = new EmbeddedStore({ dir: harness.dir, durability: 'write' });
    await assert.rejects(store.listSessions(), StoreError);
    await store.open();
    await assert.rejects(store.open(), StoreError);
    await assert.rejects(harness.store(), StoreError, 'a second store on the same directory');
    await store.takeSession(record('c'), false);
    await store.close();
    await assert.rejects(store.takeSession(record('c'), false), StoreError);
    await assert.rejects(store.getSession('c'), StoreError);
    await store.close();
    const again = await harness.store();
    assert.equal((await again.listSessions()).length, 1);
  });

  for (const [label, cut] of [
    ['inside the header of the last record', (sizes: number[]) => sizes[1]! + 5],
    ['inside the payload of the last record', (sizes: number[]) => sizes[2]! - 3],
  ] as const) {
    test(`a torn tail record (${label}) is truncated with a warning`, async () => {
      harness = new Harness();
      const store = await harness.store();
      const { sizes, ids } = await threeCommits(store);
      await harness.closeAll();
      truncateSync(harness.logPath(), cut(sizes));

      const reopened = await harness.store();
      assert.deepEqual(await queuedIds(reopened), ids.slice(0, 2));
      assert.equal(harness.warnings.length, 1);
      assert.match(harness.warnings[0]!.msg ?? '', /truncat/);
      assert.equal(harness.logSize(), sizes[1]);
      // New records go after the good ones and survive.
      const m = message('t', 'after');
      await reopened.commitPublish({ message: m, deliveries: [{ clientId: 'c', qos: 1, retain: false }] });
      await harness.closeAll();
      const third = await harness.store();
      assert.deepEqual(await queuedIds(third), [...ids.slice(0, 2), m.id]);
      assert.equal(harness.warnings.length, 1);
    });
  }

  for (const [label, offset] of [
    ['a payload byte', (sizes: number[]) => sizes[2]! - 2],
    ['the checksum field', (sizes: number[]) => sizes[1]! + 5],
  ] as const) {
    test(`a corrupt last record (${label}) is dropped with a warning`, async () => {
      harness = new Harness();
      const store = await harness.store();
      const { sizes, ids } = await threeCommits(store);
      await harness.closeAll();
      const bytes = readFileSync(harness.logPath());
      bytes[offset(sizes)]! ^= 0x5a;
      writeFileSync(harness.logPath(), bytes);

      const reopened = await harness.store();
      assert.deepEqual(await queuedIds(reopened), ids.slice(0, 2));
      assert.equal(harness.warnings.length, 1);
      assert.equal((harness.warnings[0]!.obj as { reason?: string }).reason, 'checksum mismatch');
      assert.equal(harness.logSize(), sizes[1]);
    });
  }

  test('garbage with an impossible length after the last record is dropped', async () => {
    harness = new Harness();
    const store = await harness.store();
    const { sizes, ids } = await threeCommits(store);
    await harness.closeAll();
    const garbage = Buffer.alloc(16, 0xff);
    writeFileSync(harness.logPath(), Buffer.concat([readFileSync(harness.logPath()), garbage]));
    const reopened = await harness.store();
    assert.deepEqual(await queuedIds(reopened), ids);
    assert.equal(harness.warnings.length, 1);
    assert.equal(harness.logSize(), sizes[2]);
  });

  test('corruption in the middle drops that record and everything after it, with a warning', async () => {
    harness = new Harness();
    const store = await harness.store();
    const { sizes, ids } = await threeCommits(store);
    await harness.closeAll();
    const bytes = readFileSync(harness.logPath());
    bytes[sizes[0]! + 10]! ^= 0xff;
    writeFileSync(harness.logPath(), bytes);
    const reopened = await harness.store();
    assert.deepEqual(await queuedIds(reopened), ids.slice(0, 1));
    assert.equal((harness.warnings[0]!.obj as { droppedBytes?: number }).droppedBytes, sizes[2]! - sizes[0]!);
  });

  test('an empty or torn log header is repaired', async () => {
    harness = new Harness();
    const store = await harness.store();
    await harness.closeAll();
    truncateSync(harness.logPath(), 3);
    const reopened = await harness.store();
    await reopened.takeSession(record('c'), false);
    await harness.closeAll();
    const third = await harness.store();
    assert.equal((await third.listSessions()).length, 1);
    assert.equal(store.stats.generation, 1);
  });

  test('automatic compaction keeps the state and reopens identical', async () => {
    harness = new Harness();
    const store = await harness.store({ compactThresholdBytes: 16 * 1024 });
    await populate(store);
    const { epoch } = await store.takeSession(record('churn'), false);
    const big = noise(1500, 7);
    for (let i = 0; i < 200; i++) {
      const r = await store.commitPublish({ message: message('churn/t', big, { retain: true }), deliveries: [{ clientId: 'churn', qos: 1, retain: false }], retain: 'set' });
      await store.markSent('churn', epoch, r.seqs[0]!, (i % 65535) + 1);
      if (i % 2 === 0) await store.completeDelivery('churn', epoch, (i % 65535) + 1);
    }
    await store.compact(); // settle: waits for any background compaction, then compacts once more
    assert.ok(store.stats.compactions >= 2, `compactions: ${store.stats.compactions}`);
    const gen = store.stats.generation;
    assert.ok(gen >= 3);
    const before = await dump(store);
    await harness.closeAll();
    assert.deepEqual(readdirSync(harness.dir).sort(), [logName(gen), snapName(gen)]);
    const reopened = await harness.store();
    assert.deepEqual(await dump(reopened), before);
    assert.equal(reopened.stats.generation, gen);
    assert.deepEqual(harness.warnings, []);
  });

  test('after compaction and reopen, epochs and seqs still never repeat', async () => {
    harness = new Harness();
    const store = await harness.store();
    const { epoch } = await store.takeSession(record('c'), false);
    let lastSeq = 0;
    for (let i = 1; i <= 5; i++) {
      const { seqs } = await store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'c', qos: 1, retain: false }] });
      await store.markSent('c', epoch, seqs[0]!, i);
      await store.completeDelivery('c', epoch, i);
      lastSeq = seqs[0]!;
    }
    const gone = await store.takeSession(record('gone'), false);
    await store.deleteSession('gone');
    await store.compact();
    await harness.closeAll();
    const reopened = await harness.store();
    assert.deepEqual((await reopened.getSession('c'))?.deliveries, []);
    const again = await reopened.takeSession(record('gone'), false);
    assert.ok(again.epoch > gone.epoch, `epoch ${again.epoch} reused after ${gone.epoch}`);
    const c = await reopened.takeSession(record('c'), false);
    const { seqs } = await reopened.commitPublish({ message: message('t'), deliveries: [{ clientId: 'c', qos: 1, retain: false }] });
    assert.ok(seqs[0]! > lastSeq, `seq ${seqs[0]} after ${lastSeq}`);
    await assert.rejects(reopened.addIncomingQos2('c', epoch, 1), StaleEpochError);
    await reopened.addIncomingQos2('c', c.epoch, 1);
  });

  test('a queue longer than one snapshot record survives compaction', async () => {
    harness = new Harness();
    const store = await harness.store();
    const { epoch } = await store.takeSession(record('long'), false);
    await store.takeSession(record('other'), false);
    for (let round = 0; round < 12; round++) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          store.commitPublish({ message: message('t', `${round}-${i}`), deliveries: [{ clientId: 'long', qos: 1, retain: false }, ...(i === 0 ? [{ clientId: 'other', qos: 1 as const, retain: false }] : [])] }),
        ),
      );
    }
    const seqs = (await store.getSession('long'))!.deliveries.map((d) => d.seq);
    await store.markSent('long', epoch, seqs[11_000]!, 7);
    await store.compact();
    const before = await dump(store);
    await harness.closeAll();
    const reopened = await harness.store();
    assert.deepEqual(await dump(reopened), before);
    await reopened.completeDelivery('long', epoch, 7);
    assert.equal((await reopened.getSession('long'))!.deliveries.length, 11_999);
  });

  test('a failed log write fails the store for good', async () => {
    harness = new Harness();
    const store = await harness.store();
    await store.takeSession(record('c'), false);
    // Pull the file out from under the store.
    await (store as unknown as { log: { close(): Promise<void> } }).log.close();
    await assert.rejects(store.commitPublish({ message: message('t'), deliveries: [{ clientId: 'c', qos: 1, retain: false }] }), StoreError);
    await assert.rejects(store.getSession('c'), StoreError);
    await assert.rejects(store.takeSession(record('d'), false), StoreError);
    await store.close();
    const reopened = await harness.store();
    assert.deepEqual((await reopened.getSession('c'))?.deliveries, []);
  });

  test('a crash at any step of compaction recovers the same state', async () => {
    harness = new Harness();
    const copies = new Map<CompactionStep, string>();
    let hookOn = false;
    let late: { id: string } | undefined;
    const store = await harness.store({
      onCompactionStep: async (step) => {
        if (!hookOn) return;
        if (step === 'log-switched') {
          // Writes made now go to the new log while the snapshot is not yet written.
          const m = message('late', 'after the switch');
          late = m;
          await store.commitPublish({ message: m, deliveries: [{ clientId: 'alpha', qos: 1, retain: false }], retain: 'set' });
        }
        const copy = tempDir();
        cpSync(harness.dir, copy, { recursive: true });
        copies.set(step, copy);
      },
    });
    await populate(store);
    await store.compact(); // generation 2 has a snapshot: the next compaction has old files to remove
    await store.commitPublish({ message: richMessage('x/y'), deliveries: [{ clientId: 'beta', qos: 2, retain: false }] });
    hookOn = true;
    await store.compact();
    hookOn = false;
    const expected = await dump(store);
    assert.ok(late && expected.retained.some((m) => m.id === late!.id));
    assert.deepEqual([...copies.keys()], ['log-switched', 'snapshot-written', 'snapshot-renamed', 'old-files-removed']);
    assert.ok(copies.get('snapshot-written') && readdirSync(copies.get('snapshot-written')!).some((f) => f.endsWith('.tmp')));

    for (const [step, copy] of copies) {
      const recovered = await harness.store({}, copy);
      assert.deepEqual(await dump(recovered), expected, `crash after ${step}`);
      assert.ok(!readdirSync(copy).some((f) => f.endsWith('.tmp')), 'tmp snapshot removed');
      // And it keeps working.
      await recovered.takeSession(record('after'), false);
    }
    assert.deepEqual(harness.warnings, []);
  });

  test('a corrupt newest snapshot falls back to the older generation when it is still there', async () => {
    harness = new Harness();
    let copy = '';
    const store = await harness.store({
      onCompactionStep: (step) => {
        if (step === 'snapshot-renamed' && !copy) {
          copy = tempDir();
          cpSync(harness.dir, copy, { recursive: true });
        }
      },
    });
    await populate(store);
    await store.compact();
    const expected = await dump(store);
    // In the copy, both generations are present; break the new snapshot.
    const snap = join(copy, snapName(2));
    const bytes = readFileSync(snap);
    bytes[bytes.length - 3]! ^= 1;
    writeFileSync(snap, bytes);
    const recovered = await harness.store({}, copy);
    assert.deepEqual(await dump(recovered), expected);
    assert.equal(harness.warnings.length, 1);
    assert.match(harness.warnings[0]!.msg ?? '', /snapshot/);
  });

  test('a corrupt snapshot without older files refuses to open instead of losing data', async () => {
    harness = new Harness();
    const store = await harness.store();
    await populate(store);
    await store.compact();
    await harness.closeAll();
    const snap = join(harness.dir, snapName(2));
    truncateSync(snap, Math.floor(statSync(snap).size / 2));
    await assert.rejects(harness.store(), StoreError);
    assert.ok(existsSync(snap), 'nothing deleted');
  });

  test('writes racing with compaction all survive', async () => {
    harness = new Harness();
    const store = await harness.store({ compactThresholdBytes: 8 * 1024 });
    const c = await store.takeSession(record('c'), false);
    const { epoch } = await store.takeSession(record('d'), false);
    await store.addSubscriptions('d', epoch, [sub('#')]);
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 300; i++) {
      const packetId = i + 1;
      writes.push(
        store
          .commitPublish({ message: message(`r/${i % 5}`, noise(400, i + 1), { retain: true }), deliveries: [{ clientId: 'c', qos: 2, retain: false }], retain: 'set' })
          .then(async ({ seqs }) => {
            await store.markSent('c', c.epoch, seqs[0]!, packetId);
            if (i % 3 === 0) await store.markReleased('c', c.epoch, packetId);
            if (i % 6 === 0) await store.completeDelivery('c', c.epoch, packetId);
          }),
      );
      if (i % 50 === 0) writes.push(store.compact());
      if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(writes);
    await store.compact();
    const before = await dump(store);
    assert.equal(before.snapshots[0]!.deliveries.length, 250);
    assert.equal(before.snapshots[0]!.deliveries.filter((d) => d.phase === 'released').length, 50);
    await harness.closeAll();
    const reopened = await harness.store();
    assert.deepEqual(await dump(reopened), before);
  });

  const childScript = fileURLToPath(new URL('./testing/kill-child.js', import.meta.url));
  for (const durability of ['write', 'fsync'] as const) {
    test(`kill -9 mid-run loses no reported commit (${durability})`, { timeout: 60_000 }, async () => {
      harness = new Harness();
      const child = spawn(process.execPath, [childScript, harness.dir, durability], { stdio: ['ignore', 'pipe', 'pipe'] });
      const reported = new Set<number>();
      let stderr = '';
      let buffered = '';
      let killed = false;
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const line of lines) {
          const m = /^committed (\d+)$/.exec(line);
          if (m) reported.add(Number(m[1]));
        }
        if (!killed && reported.size >= 400) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
      clearTimeout(timer);
      assert.equal(signal, 'SIGKILL', `child exited with ${code}: ${stderr}`);
      assert.ok(killed, `child only reported ${reported.size} commits: ${stderr}`);

      const store = await harness.store();
      const ids = await queuedIds(store, 'keep');
      const present = ids.map((id) => Number(id.slice(2)));
      // A prefix of the commits survived, in order, and it covers every reported one.
      assert.deepEqual(present, Array.from({ length: present.length }, (_, i) => i + 1));
      const maxReported = Math.max(...reported);
      assert.ok(present.length >= maxReported, `reported up to ${maxReported}, recovered ${present.length}`);
      for (const n of reported) assert.ok(n <= present.length, `commit ${n} lost`);
      assert.ok(store.stats.generation > 1, 'compaction ran in the child');
      if (present.length > 4) assert.equal((await store.listRetained()).length, 1);
      // The recovered store works.
      await store.commitPublish({ message: message('keep/t'), deliveries: [{ clientId: 'keep', qos: 1, retain: false }] });
    });
  }
});
