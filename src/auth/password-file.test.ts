/**
 * Password files both ways: files made by Debian's mosquitto_passwd are read; files written by
 * `skein passwd` are accepted by the real Mosquitto broker.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PasswordFile, parsePasswordFile } from './password-file.js';
import { passwdCommand } from '../cli/passwd.js';
import { killAll, runProc, startProc, tempDir, REPO_ROOT } from '../interop/helpers.js';
import { freePort } from './testing.js';

const dir = tempDir('skein-pw-');
after(async () => {
  await killAll();
  dir.remove();
});

function sink(): NodeJS.WritableStream & { text: string } {
  const s = { text: '', write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WritableStream & { text: string };
}

async function skeinPasswd(args: string[], readPassword?: (p: string) => Promise<string | undefined>): Promise<{ code: number; err: string }> {
  const stderr = sink();
  const code = await passwdCommand(args, { stdout: sink(), stderr, readPassword });
  return { code, err: stderr.text };
}

describe('reading mosquitto_passwd files', () => {
  it('accepts $7$ (default) and $6$ (-H sha512) users, refuses wrong passwords', async () => {
    const f = join(dir.path, 'mq');
    for (const args of [['-c', '-b', f, 'alice', 'secret'], ['-H', 'sha512', '-b', f, 'bob', 'pw with spaces'], ['-I', '1000', '-b', f, 'carol', 'ünïcode']]) {
      const p = await runProc('/usr/bin/mosquitto_passwd', args, 10_000);
      assert.equal(p.exit?.code, 0, p.describe());
    }
    assert.match(readFileSync(f, 'utf8'), /^bob:\$6\$/m);
    const pf = new PasswordFile(f);
    assert.deepEqual(await pf.load(), []);
    assert.equal(pf.size, 3);
    assert.equal(await pf.check('alice', Buffer.from('secret')), 'ok');
    assert.equal(await pf.check('alice', Buffer.from('Secret')), 'bad');
    assert.equal(await pf.check('alice', undefined), 'bad');
    assert.equal(await pf.check('bob', Buffer.from('pw with spaces')), 'ok');
    assert.equal(await pf.check('bob', Buffer.from('pw')), 'bad');
    assert.equal(await pf.check('carol', Buffer.from('ünïcode')), 'ok');
    assert.equal(await pf.check('dave', Buffer.from('x')), 'unknown');
  });

  it('reports lines that do not parse (with line numbers) and keeps the others', () => {
    const good = 'alice:$7$101$tkzxp5tY+1yyRAre$4xoDo/2mFB/JVViTZn3BbYNjlnO58GDNkdOQJ2jBGkxfa9Yon83H7tpC8BshaU+NDV1pp36Un+afoKugpfQrXA==';
    const text = ['# comment', '', good, 'nocolon', 'bob:$5$abc$def', 'carol:$7$0$tkzxp5tY+1yyRAre$aGVsbG8=', 'dan:$6$short$aGVsbG8=', ':$6$x$y', good].join('\n');
    const { users, issues } = parsePasswordFile(text);
    assert.deepEqual([...users.keys()], ['alice']);
    assert.deepEqual(
      issues.map((i) => i.line),
      [4, 5, 6, 7, 8, 9],
    );
    assert.match(issues[1]!.problem, /unsupported hash type/);
    assert.match(issues[5]!.problem, /appears again/);
  });
});

describe('skein passwd', () => {
  it('-c/-b/-D/-H/-I edit a file like mosquitto_passwd; other lines are kept', async () => {
    const f = join(dir.path, 'sk');
    assert.equal((await skeinPasswd(['-c', '-b', f, 'alice', 'one'])).code, 0);
    assert.equal(statSync(f).mode & 0o777, 0o600);
    assert.equal((await skeinPasswd(['-b', '-H', 'sha512', f, 'bob', 'two'])).code, 0);
    assert.equal((await skeinPasswd(['-b', '-I', '2000', f, 'alice', 'three'])).code, 0);
    writeFileSync(f, '# kept comment\n' + readFileSync(f, 'utf8'));
    const lines = readFileSync(f, 'utf8').trim().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[1]!, /^alice:\$7\$2000\$/);
    assert.match(lines[2]!, /^bob:\$6\$/);
    const pf = new PasswordFile(f);
    await pf.load();
    assert.equal(await pf.check('alice', Buffer.from('three')), 'ok');
    assert.equal(await pf.check('bob', Buffer.from('two')), 'ok');
    assert.equal((await skeinPasswd(['-D', f, 'bob'])).code, 0);
    assert.equal((await skeinPasswd(['-D', f, 'bob'])).code, 1);
    assert.equal(readFileSync(f, 'utf8').includes('bob:'), false);
    assert.equal(readFileSync(f, 'utf8').startsWith('# kept comment\n'), true);
    assert.equal((await skeinPasswd(['-c', '-D', f, 'alice'])).code, 1);
    assert.equal((await skeinPasswd(['-b', f, 'a:b', 'x'])).code, 1);
    assert.equal((await skeinPasswd(['-b', join(dir.path, 'missing'), 'u', 'x'])).code, 1);
  });

  it('without -b: reads the password twice from the terminal, and needs one', async () => {
    const f = join(dir.path, 'tty');
    const answers = ['pw1', 'pw1'];
    assert.equal((await skeinPasswd(['-c', f, 'erin'], async () => answers.shift())).code, 0);
    const pf = new PasswordFile(f);
    await pf.load();
    assert.equal(await pf.check('erin', Buffer.from('pw1')), 'ok');
    const mismatch = ['a', 'b'];
    const r = await skeinPasswd([f, 'erin'], async () => mismatch.shift());
    assert.equal(r.code, 1);
    assert.match(r.err, /do not match/);
    const noTty = await skeinPasswd([f, 'erin'], async () => undefined);
    assert.equal(noTty.code, 1);
    assert.match(noTty.err, /-b/);
    // The real command with stdin not a terminal.
    const cli = await runProc(process.execPath, [join(REPO_ROOT, 'bin/skein.js'), 'passwd', f, 'erin'], 10_000);
    assert.equal(cli.exit?.code, 1, cli.describe());
  });

  it('files written by `skein passwd` are accepted by the real Mosquitto broker', { timeout: 30_000 }, async () => {
    const f = join(dir.path, 'for-mosquitto');
    const cli = await runProc(process.execPath, [join(REPO_ROOT, 'bin/skein.js'), 'passwd', '-c', '-b', f, 'alice', 's3cret'], 10_000);
    assert.equal(cli.exit?.code, 0, cli.describe());
    assert.equal((await skeinPasswd(['-b', '-H', 'sha512', f, 'bob', 'legacy'])).code, 0);
    assert.equal((await skeinPasswd(['-b', '-I', '5000', f, 'carol', 'many'])).code, 0);
    const port = await freePort();
    const conf = join(dir.path, 'mosquitto.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${f}\nuser root\n`);
    const broker = startProc('/usr/sbin/mosquitto', ['-c', conf], { maxLifetimeMs: 30_000 });
    try {
      // Wait until it listens.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const probe = await runProc('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'alice', '-P', 's3cret', '-t', 't', '-m', 'm'], 10_000);
        if (probe.exit?.code === 0) break;
        if (Date.now() > deadline) assert.fail(`mosquitto did not accept alice\n${probe.describe()}\n${broker.describe()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const pub = (u: string, p: string) => runProc('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', u, '-P', p, '-t', 't', '-m', 'm'], 10_000);
      assert.equal((await pub('bob', 'legacy')).exit?.code, 0);
      assert.equal((await pub('carol', 'many')).exit?.code, 0);
      const wrong = await pub('alice', 'wrong');
      assert.notEqual(wrong.exit?.code, 0);
      assert.match(wrong.stderr + wrong.stdout, /not authori[sz]ed|Connection Refused/i);
    } finally {
      broker.kill('SIGTERM');
      await broker.waitExit(5_000).catch(() => undefined);
    }
  });
});
