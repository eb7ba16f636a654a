/**
 * End to end over real sockets: password files, ACL files (with mosquitto_pub / mosquitto_sub and
 * MQTT.js), reload (SIGHUP path), anonymous access from loopback and from elsewhere (PROXY header).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RawClient } from '../testing/harness.js';
import { JsClient, endAllJs, killAll, runProc, startProc, sleep, tempDir, uid, until, type Proc } from '../interop/helpers.js';
import { startAuthNode } from './testing.js';
import { isLoopback } from './chain.js';

const dir = tempDir('skein-auth-');
after(async () => {
  await killAll();
  await endAllJs();
  dir.remove();
});

/** A password file made by Debian's mosquitto_passwd. */
async function mosquittoPasswordFile(name: string, users: Array<[string, string]>): Promise<string> {
  const file = join(dir.path, name);
  let first = true;
  for (const [u, p] of users) {
    const p1 = await runProc('mosquitto_passwd', [...(first ? ['-c'] : []), '-b', file, u, p], 10_000);
    assert.equal(p1.exit?.code, 0, p1.describe());
    first = false;
  }
  return file;
}

function file(name: string, text: string): string {
  const f = join(dir.path, name);
  writeFileSync(f, text);
  return f;
}

/** SUBACK codes (MQTT.js rejects a SUBACK with failure codes; its packet has them). */
async function subscribe(c: JsClient, topic: string, qos: 0 | 1 | 2): Promise<number[]> {
  try {
    return await c.subscribe(topic, qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted;
  }
}

/** Publishes; resolves with the error message when the broker refuses (PUBACK 0x87). */
async function publish(c: JsClient, topic: string, payload: string): Promise<string | undefined> {
  try {
    await c.publish(topic, payload, 1);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

async function connack(port: number, version: 4 | 5, connect: Record<string, unknown>): Promise<number> {
  const c = await RawClient.connect(port, version);
  try {
    const ack = await c.handshake(connect);
    return (version === 5 ? ack.reasonCode : ack.returnCode) ?? -1;
  } finally {
    c.destroy();
  }
}

describe('password file', () => {
  it('accepts mosquitto_passwd users, refuses wrong passwords (0x86 / 4) and anonymous clients (0x87 / 5)', async (t) => {
    const pw = await mosquittoPasswordFile('pw1', [['alice', 'secret']]);
    const { node, port } = await startAuthNode({ passwordFile: pw });
    t.after(() => node.stop());
    const alice = { username: 'alice', password: Buffer.from('secret') };
    assert.equal(await connack(port, 5, alice), 0);
    assert.equal(await connack(port, 4, alice), 0);
    const wrong = { username: 'alice', password: Buffer.from('nope') };
    assert.equal(await connack(port, 5, wrong), 0x86);
    assert.equal(await connack(port, 4, wrong), 4);
    const unknown = { username: 'mallory', password: Buffer.from('secret') };
    assert.equal(await connack(port, 5, unknown), 0x86);
    assert.equal(await connack(port, 4, unknown), 4);
    // allowAnonymous is false: even from loopback, once a password file is configured.
    assert.equal(await connack(port, 5, {}), 0x87);
    assert.equal(await connack(port, 4, {}), 5);
    // mosquitto_pub with -u/-P: exit 0; with a wrong password it fails.
    const base = ['-h', '127.0.0.1', '-p', String(port), '-t', 'x', '-m', 'y'];
    const ok = await runProc('mosquitto_pub', [...base, '-u', 'alice', '-P', 'secret'], 10_000);
    assert.equal(ok.exit?.code, 0, ok.describe());
    const bad = await runProc('mosquitto_pub', [...base, '-u', 'alice', '-P', 'wrong'], 10_000);
    assert.notEqual(bad.exit?.code, 0, bad.describe());
  });

  it('allowAnonymous lets clients without credentials in next to the password file', async (t) => {
    const pw = await mosquittoPasswordFile('pw2', [['bob', 'pw']]);
    const { node, port } = await startAuthNode({ passwordFile: pw, allowAnonymous: true });
    t.after(() => node.stop());
    assert.equal(await connack(port, 5, {}), 0);
    assert.equal(await connack(port, 5, { username: 'bob', password: Buffer.from('bad') }), 0x86);
  });
});

describe('anonymous access without authenticators', () => {
  it('loopback clients are let in; a non-loopback client (PROXY header) gets 0x87 / 5 unless allowAnonymous', async (t) => {
    const { node, port } = await startAuthNode({}, { proxyProtocol: true, trustedProxies: '127.0.0.1' });
    t.after(() => node.stop());
    const viaProxy = async (src: string, version: 4 | 5): Promise<number> => {
      const s = net.connect(port, '127.0.0.1');
      t.after(() => s.destroy());
      await new Promise((r) => s.once('connect', r));
      const got: Buffer[] = [];
      s.on('data', (d) => got.push(d));
      const c = await RawClient.connect(port, version); // only to build the CONNECT bytes
      c.destroy();
      const mqttPacket = (await import('mqtt-packet')).default;
      const connect = mqttPacket.generate(
        { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: uid('px').slice(0, 20), clean: true, keepalive: 30 } as never,
        { protocolVersion: version },
      );
      s.write(Buffer.concat([Buffer.from(`PROXY TCP4 ${src} 127.0.0.1 40000 1883\r\n`), connect]));
      await until(() => Buffer.concat(got).length >= 4, 5000, 'CONNACK');
      const b = Buffer.concat(got);
      return b[3]!;
    };
    assert.equal(await viaProxy('198.51.100.7', 5), 0x87);
    assert.equal(await viaProxy('198.51.100.7', 4), 5);
    assert.equal(await viaProxy('127.0.0.5', 5), 0);
  });

  it('allowAnonymous: true lets non-loopback clients in', async (t) => {
    const { node, port } = await startAuthNode({ allowAnonymous: true }, { proxyProtocol: true, trustedProxies: '127.0.0.1' });
    t.after(() => node.stop());
    const s = net.connect(port, '127.0.0.1');
    t.after(() => s.destroy());
    await new Promise((r) => s.once('connect', r));
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    const mqttPacket = (await import('mqtt-packet')).default;
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'anon1', clean: true, keepalive: 30 } as never);
    s.write(Buffer.concat([Buffer.from('PROXY TCP4 198.51.100.7 127.0.0.1 40000 1883\r\n'), connect]));
    await until(() => Buffer.concat(got).length >= 4, 5000, 'CONNACK');
    assert.equal(Buffer.concat(got).toString('hex'), '20020000');
  });

  it('isLoopback', () => {
    for (const a of ['127.0.0.1:1', '127.9.9.9:2', '::1:3', '::ffff:127.0.0.1:4', '0:0:0:0:0:0:0:1:5']) assert.equal(isLoopback(a), true, a);
    for (const a of ['10.0.0.1:1', '198.51.100.7:2', '2001:db8::1:3', 'unknown:0', '::ffff:10.0.0.1:4']) assert.equal(isLoopback(a), false, a);
  });
});

describe('ACL file', () => {
  const acl = `# anonymous clients
topic read public/#

user alice
topic readwrite home/alice/#
topic deny home/alice/secret
topic read #
topic deny restricted/#
topic write public/#

user bob
topic write home/bob/#
topic write restricted/#

pattern readwrite clients/%c/#
pattern write sensor/%u/data
`;

  it('publish (write), subscribe (read, covered) and delivery (read) with %c/%u patterns and deny first', async (t) => {
    const pw = await mosquittoPasswordFile('pw3', [
      ['alice', 'a'],
      ['bob', 'b'],
    ]);
    const { node, url, port } = await startAuthNode({ passwordFile: pw, aclFile: file('acl1', acl) });
    t.after(() => node.stop());
    const alice = await JsClient.connect(url, { protocolVersion: 5, clientId: 'alice-1', username: 'alice', password: 'a' });
    const bob = await JsClient.connect(url, { protocolVersion: 5, clientId: 'bob-1', username: 'bob', password: 'b' });

    // Subscribe: alice's `#` is covered by `topic read #`; bob has no read rule for `#`.
    assert.deepEqual(await subscribe(alice, '#', 1), [1]);
    assert.deepEqual(await subscribe(bob, '#', 1), [0x87]);
    assert.deepEqual(await subscribe(bob, 'clients/bob-1/#', 1), [1]); // %c
    assert.deepEqual(await subscribe(bob, 'clients/alice-1/#', 1), [0x87]);
    // A filter entirely inside a deny rule is refused even though `#` is readable.
    assert.deepEqual(await subscribe(alice, 'restricted/x/#', 1), [0x87]);

    // Publish: bob writes home/bob/# and sensor/bob/data (%u), not sensor/alice/data.
    await bob.publish('home/bob/t', 'b1', 1);
    await bob.publish('sensor/bob/data', 'b2', 1);
    assert.match((await publish(bob, 'sensor/alice/data', 'denied'))!, /Not authorized/);
    await bob.publish('restricted/x', 'r1', 1);
    await alice.waitMessage('home/bob/t', 5000, 'b1');
    await alice.waitMessage('sensor/bob/data', 5000, 'b2');

    // Delivery: alice's `#` does not receive restricted/x (deny first, whatever the line order).
    await bob.publish('home/bob/last', 'marker', 1);
    await alice.waitMessage('home/bob/last', 5000, 'marker');
    assert.equal(alice.messages.some((m) => m.topic === 'restricted/x'), false);
    assert.equal(alice.messages.some((m) => m.topic === 'sensor/alice/data'), false);

    // alice: deny beats readwrite for home/alice/secret.
    assert.match((await publish(alice, 'home/alice/secret', 's'))!, /Not authorized/);
    await alice.publish('home/alice/open', 'o', 1);
    await alice.waitMessage('home/alice/open', 5000, 'o');
    assert.equal(alice.messages.some((m) => m.topic === 'home/alice/secret'), false);

    // mosquitto_sub as an anonymous client is refused (no allowAnonymous): exit code != 0.
    const anon = await runProc('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', 'public/#', '-C', '1', '-W', '3'], 10_000);
    assert.notEqual(anon.exit?.code, 0);
  });

  it('mosquitto_sub/mosquitto_pub: anonymous lines apply to anonymous clients, user lines to user names', async (t) => {
    // No password file: loopback clients are let in and their user names taken as given.
    const { node, port } = await startAuthNode({ aclFile: file('acl2', acl) });
    t.after(() => node.stop());
    const base = ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311'];
    const sub: Proc = startProc('stdbuf', ['-oL', 'mosquitto_sub', ...base, '-d', '-t', 'public/#', '-F', 'MSG|%t|%p', '-W', '10', '-C', '1'], { maxLifetimeMs: 15_000 });
    await sub.waitForLine(/received SUBACK/, 8_000);
    // The anonymous publisher has no write rule: dropped. alice may write public/#.
    const p1 = await runProc('mosquitto_pub', [...base, '-t', 'public/a', '-m', 'dropped', '-q', '1'], 10_000);
    assert.equal(p1.exit?.code, 0, p1.describe());
    const p2 = await runProc('mosquitto_pub', [...base, '-u', 'alice', '-t', 'public/b', '-m', 'ok', '-q', '1'], 10_000);
    assert.equal(p2.exit?.code, 0, p2.describe());
    const exit = await sub.waitExit(8_000);
    assert.equal(exit.code, 0, sub.describe());
    assert.deepEqual(sub.lines.filter((l) => l.startsWith('MSG|')), ['MSG|public/b|ok']);
    // Outside its read rules the anonymous client's subscription is refused (SUBACK 128).
    const denied = await runProc('mosquitto_sub', [...base, '-d', '-t', 'private/#', '-W', '2', '-C', '1'], 10_000);
    assert.match(denied.stdout + denied.stderr, /Subscribed \(mid: \d+\): 128/, denied.describe());
  });

  it('reload (SIGHUP) re-reads the ACL file and removes subscriptions now refused', async (t) => {
    const aclPath = file('acl3', 'user carol\ntopic read feeds/#\ntopic readwrite feeds/carol\n');
    const pw = await mosquittoPasswordFile('pw4', [['carol', 'c']]);
    const { node, url } = await startAuthNode({ passwordFile: pw, aclFile: aclPath });
    t.after(() => node.stop());
    const carol = await JsClient.connect(url, { protocolVersion: 5, clientId: 'carol-1', username: 'carol', password: 'c' });
    assert.deepEqual(await subscribe(carol, 'feeds/#', 1), [1]);
    await carol.publish('feeds/carol', 'before', 1);
    await carol.waitMessage('feeds/carol', 5000, 'before');
    assert.deepEqual([...node.broker.sessions.get('carol-1')!.subscriptions.keys()], ['feeds/#']);

    writeFileSync(aclPath, 'user carol\ntopic write feeds/carol\n');
    assert.equal(await node.reload(), 1);
    assert.deepEqual([...node.broker.sessions.get('carol-1')!.subscriptions.keys()], []);
    assert.equal(await publish(carol, 'feeds/carol', 'after'), undefined);
    await sleep(300);
    assert.equal(carol.messages.some((m) => m.payload === 'after'), false);
    // A file that cannot be read keeps the previous rules.
    rmSync(aclPath);
    await node.reload();
    assert.deepEqual(await subscribe(carol, 'feeds/#', 1), [0x87]);
    writeFileSync(aclPath, 'user carol\ntopic read feeds/#\n');
    await node.reload();
    assert.deepEqual(await subscribe(carol, 'feeds/#', 1), [1]);
  });
});

describe('ChainAuthorizer (unit)', () => {
  it('a certificate user name needs no password; superuser/own rules/ACL file combine deny-first', async () => {
    const { ChainAuthorizer } = await import('./chain.js');
    const { PasswordFile } = await import('./password-file.js');
    const { AclFile } = await import('./acl-file.js');
    const { createLogger } = await import('../log.js');
    const pw = await mosquittoPasswordFile('pw5', [['dora', 'd']]);
    const aclPath = file('acl5', 'user dora\ntopic read shared/#\ntopic deny shared/private\n');
    const passwordFile = new PasswordFile(pw);
    await passwordFile.load();
    const aclFile = new AclFile(aclPath);
    await aclFile.load();
    const chain = new ChainAuthorizer({ allowAnonymous: false, passwordFile, aclFile, logger: createLogger('silent') });
    const id = { clientId: 'c1', username: 'dora', remoteAddress: '10.1.1.1:5', protocolVersion: 5 as const };
    assert.equal((await chain.authenticate({ ...id })).reasonCode, 0x86);
    assert.equal((await chain.authenticate({ ...id, certificateUsername: true })).reasonCode, 0);
    assert.equal(chain.authorizeSubscribe(id, 'shared/#'), true);
    assert.equal(chain.authorizeDelivery(id, 'shared/private'), false);
    assert.equal(chain.authorizePublish(id, 'shared/x'), false); // default deny with an ACL file
  });
});
