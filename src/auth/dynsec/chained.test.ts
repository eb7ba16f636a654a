/**
 * Dynamic security with the rest of the node: its internal command client is not a client
 * ($SYS counts, maxConnections), and it composes with the password file and the ACL file in
 * Mosquitto 2.0's order (dynsec first, the files for what it defers; see chained.ts).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultConfig, type SkeinConfig } from '../../config/schema.js';
import { createLogger } from '../../log.js';
import { startNode, type SkeinNode } from '../../node.js';
import { JsClient, endAllJs, sleep, tempDir } from '../../interop/helpers.js';
import { AclFile } from '../acl-file.js';
import { ChainAuthorizer } from '../chain.js';
import { hashPassword, PasswordFile } from '../password-file.js';
import type { ClientIdentity } from '../types.js';
import { DynsecAuthorizer, INTERNAL_CLIENT_ID } from './authorizer.js';
import { DynsecChainAuthorizer } from './chained.js';
import { runCommands } from './commands.js';
import { initialState, serializeState, type DynsecState } from './state.js';

const RESPONSE = '$CONTROL/dynamic-security/v1/response';

function nodeConfig(dir: string, extra: (c: SkeinConfig) => void = () => undefined): SkeinConfig {
  const c = defaultConfig();
  c.nodeId = 'dyn';
  c.dataDir = dir;
  c.listeners = [{ ...c.listeners[0]!, port: 0, host: '127.0.0.1' }];
  c.store.type = 'memory';
  c.sys.intervalMs = 0;
  c.logLevel = (process.env.SKEIN_TEST_LOG as SkeinConfig['logLevel']) ?? 'silent';
  c.auth.dynsec = { file: join(dir, 'dynsec.json'), adminUser: 'admin', adminPassword: 'adminpw' };
  extra(c);
  return c;
}

/** Sends one dynsec command as `c` and returns the response of that command. */
async function command(c: JsClient, cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
  const correlationData = Math.random().toString(36).slice(2);
  await c.publish('$CONTROL/dynamic-security/v1', JSON.stringify({ commands: [{ ...cmd, correlationData }] }), 0);
  let found: Record<string, unknown> | undefined;
  await c.waitFor(
    () => {
      for (const m of c.messages) {
        if (m.topic !== RESPONSE) continue;
        const r = (JSON.parse(m.payload) as { responses: Array<Record<string, unknown>> }).responses.find((x) => x.correlationData === correlationData);
        if (r) found = r;
      }
      return found !== undefined;
    },
    5000,
    `response to ${String(cmd.command)}`,
  );
  return found!;
}

const sysValue = (node: SkeinNode, topic: string) => node.broker.retainedFor(topic)[0]?.payload.toString();

test('dynsec internal client: not counted in $SYS nor against maxConnections; survives a kick of all targets', { timeout: 30_000 }, async (t) => {
  const dir = tempDir('skein-dynsec-count-');
  const cfg = nodeConfig(dir.path, (c) => {
    c.sys.intervalMs = 50;
    c.limits.maxConnections = 1;
  });
  const node = await startNode(cfg, { logger: createLogger(cfg.logLevel) });
  t.after(async () => {
    await endAllJs();
    await node.stop();
    dir.remove();
  });
  const url = `mqtt://127.0.0.1:${node.addresses[0]!.port}`;
  // The command handler is registered (the case this test is about) ...
  assert.ok(node.broker.targets.has(INTERNAL_CLIENT_ID));
  assert.ok(node.broker.sessions.has(INTERNAL_CLIENT_ID));
  // ... and nobody is connected.
  await sleep(150);
  assert.equal(sysValue(node, '$SYS/broker/clients/connected'), '0');
  assert.equal(sysValue(node, '$SYS/broker/clients/total'), '0');
  assert.equal(sysValue(node, '$SYS/broker/clients/disconnected'), '0');
  assert.deepEqual(node.broker.clientCounts, { connected: 0, sessions: 0 });

  // maxConnections 1 admits one real client, which can use the command API ...
  const admin = await JsClient.connect(url, { clientId: 'admin-1', username: 'admin', password: 'adminpw', protocolVersion: 5 });
  assert.deepEqual(await admin.subscribe(RESPONSE, 0), [0]);
  const listed = await command(admin, { command: 'listClients' });
  assert.equal(listed.error, undefined, JSON.stringify(listed));
  await sleep(150);
  assert.equal(sysValue(node, '$SYS/broker/clients/connected'), '1');
  assert.equal(sysValue(node, '$SYS/broker/clients/maximum'), '1');
  // ... and a second one is refused (v5 0x89 Server busy).
  await assert.rejects(
    JsClient.connect(url, { clientId: 'admin-2', username: 'admin', password: 'adminpw', protocolVersion: 5 }),
    (err: Error & { code?: number }) => err.code === 0x89 || /busy/i.test(err.message),
  );

  // Disconnecting every target (what self-fencing and shutdown do) leaves the command handler.
  await Promise.all([...node.broker.targets.values()].map((x) => x.kick(0x8b, 'test')));
  await admin.waitFor(() => admin.closed, 5000, 'admin disconnected');
  assert.ok(node.broker.targets.has(INTERNAL_CLIENT_ID), 'internal client still registered');
  const again = await JsClient.connect(url, { clientId: 'admin-3', username: 'admin', password: 'adminpw', protocolVersion: 5 });
  await again.subscribe(RESPONSE, 0);
  const r = await command(again, { command: 'createClient', username: 'zed', password: 'z' });
  assert.equal(r.error, undefined, JSON.stringify(r));
  await again.end();
});

// ------------------------------------------------------------------ composition

async function dynsecState(): Promise<DynsecState> {
  const s = await initialState('admin', 'adminpw');
  const r = await runCommands(
    s,
    JSON.stringify({
      commands: [
        { command: 'createClient', username: 'alice', password: 'dynpw' },
        { command: 'createRole', rolename: 'dyn' },
        { command: 'addRoleACL', rolename: 'dyn', acltype: 'publishClientSend', topic: 'dyn/#', allow: true },
        { command: 'addRoleACL', rolename: 'dyn', acltype: 'subscribePattern', topic: 'dyn/#', allow: true },
        { command: 'addRoleACL', rolename: 'dyn', acltype: 'publishClientSend', topic: 'files/blocked', allow: false },
        { command: 'addClientRole', username: 'alice', rolename: 'dyn' },
      ],
    }),
  );
  assert.ok(
    r.responses.every((x) => (x as { error?: string }).error === undefined),
    JSON.stringify(r.responses),
  );
  return s;
}

const ACL = `# ACL file next to dynsec
user carol
topic readwrite files/#
user alice
topic write files/alice/#
topic write files/blocked
`;

async function files(dir: string): Promise<{ passwordFile: string; aclFile: string }> {
  const passwordFile = join(dir, 'passwd');
  const aclFile = join(dir, 'acl');
  // alice is in both: dynsec (dynpw) is asked first and decides for her.
  writeFileSync(passwordFile, `carol:${await hashPassword('carolpw')}\nalice:${await hashPassword('filepw')}\n`);
  writeFileSync(aclFile, ACL);
  return { passwordFile, aclFile };
}

test('dynsec + password file + ACL file: decision table (dynsec first, files for what it defers)', async () => {
  const dir = tempDir('skein-dynsec-chain-');
  try {
    const f = await files(dir.path);
    const dynsec = new DynsecAuthorizer({ allowAnonymous: false });
    dynsec.state = await dynsecState();
    dynsec.ready = true;
    const passwordFile = new PasswordFile(f.passwordFile);
    const aclFile = new AclFile(f.aclFile);
    await passwordFile.load();
    await aclFile.load();
    const logger = createLogger('silent');
    const a = new DynsecChainAuthorizer(dynsec, new ChainAuthorizer({ allowAnonymous: false, passwordFile, aclFile, logger }));
    const creds = (username: string | undefined, password?: string) => ({
      clientId: `c-${username ?? 'anon'}`,
      username,
      password: password === undefined ? undefined : Buffer.from(password),
      remoteAddress: '127.0.0.1:1',
      protocolVersion: 5 as const,
    });
    const rc = async (u: string | undefined, p?: string) => (await a.authenticate(creds(u, p))).reasonCode;
    // CONNECT
    assert.equal(await rc('alice', 'dynpw'), 0, 'dynsec client');
    assert.equal(await rc('alice', 'filepw'), 0x87, 'dynsec knows alice: its refusal is final (the password file is not asked)');
    assert.equal(await rc('carol', 'carolpw'), 0, 'unknown to dynsec: the password file admits');
    assert.equal(await rc('carol', 'wrong'), 0x86, 'password file: wrong password');
    assert.equal(await rc('dave', 'x'), 0x86, 'known to nobody');
    assert.equal(await rc(undefined), 0x87, 'anonymous, allowAnonymous off');
    assert.equal(await rc('admin', 'adminpw'), 0);

    const id = (username: string): ClientIdentity => ({ clientId: `c-${username}`, username, remoteAddress: '127.0.0.1:1', protocolVersion: 5 });
    const alice = id('alice');
    const carol = id('carol');
    // PUBLISH: dynsec grant; dynsec defers (default access denies) and the ACL file grants; an
    // explicit dynsec deny is final even where the ACL file grants; nobody grants.
    assert.equal(a.authorizePublish(alice, 'dyn/x'), true);
    assert.equal(a.authorizePublish(alice, 'files/alice/x'), true);
    assert.equal(a.authorizePublish(alice, 'files/blocked'), false);
    assert.equal(a.authorizePublish(alice, 'files/other'), false);
    assert.equal(a.authorizePublish(carol, 'files/x'), true);
    assert.equal(a.authorizePublish(carol, 'dyn/x'), false);
    // SUBSCRIBE
    assert.equal(a.authorizeSubscribe(alice, 'dyn/#'), true);
    assert.equal(a.authorizeSubscribe(alice, 'files/#'), false, 'the ACL file gives alice write only');
    assert.equal(a.authorizeSubscribe(carol, 'files/#'), true);
    assert.equal(a.authorizeSubscribe(carol, '#'), false);
    // Delivery: dynsec's default publishClientReceive allows its own clients; carol by the file.
    assert.equal(a.authorizeDelivery(alice, 'anything'), true);
    assert.equal(a.authorizeDelivery(carol, 'files/a'), true);
    assert.equal(a.authorizeDelivery(carol, 'dyn/a'), false);
    // $CONTROL: commands reach the internal client only, never another subscriber.
    const internal: ClientIdentity = { clientId: INTERNAL_CLIENT_ID, remoteAddress: 'internal', protocolVersion: 5 };
    assert.equal(a.authorizeDelivery(internal, '$CONTROL/dynamic-security/v1'), true);
    assert.equal(a.authorizeDelivery(internal, 'files/a'), false);
    assert.equal(a.authorizeDelivery(id('admin'), '$CONTROL/dynamic-security/v1'), false);

    // Reload re-reads the ACL file (dynsec reloads itself).
    writeFileSync(f.aclFile, ACL.replace('topic readwrite files/#', 'topic read files/#'));
    await a.reload();
    assert.equal(a.authorizePublish(carol, 'files/x'), false, 'after the reload carol may only read');
    assert.equal(a.authorizeSubscribe(carol, 'files/#'), true);

    // dynsec + ACL file only: nobody but dynsec can admit a client.
    const aclOnly = new DynsecChainAuthorizer(dynsec, new ChainAuthorizer({ allowAnonymous: false, aclFile, logger }));
    assert.equal((await aclOnly.authenticate(creds('carol', 'carolpw'))).reasonCode, 0x87);
    assert.equal((await aclOnly.authenticate(creds('alice', 'dynpw'))).reasonCode, 0);
    assert.equal(aclOnly.authorizePublish(alice, 'files/alice/x'), true, 'the ACL file still grants what dynsec defers');
  } finally {
    dir.remove();
  }
});

test('node with auth.dynsec.file and auth.passwordFile/aclFile: both apply over the network', { timeout: 30_000 }, async (t) => {
  const dir = tempDir('skein-dynsec-chain-');
  const f = await files(dir.path);
  const cfg = nodeConfig(dir.path, (c) => {
    c.auth.passwordFile = f.passwordFile;
    c.auth.aclFile = f.aclFile;
  });
  writeFileSync(cfg.auth.dynsec.file, serializeState(await dynsecState()));
  const node = await startNode(cfg, { logger: createLogger(cfg.logLevel) });
  t.after(async () => {
    await endAllJs();
    await node.stop();
    dir.remove();
  });
  const url = `mqtt://127.0.0.1:${node.addresses[0]!.port}`;
  const watch = await JsClient.connect(url, { clientId: 'watch', username: 'admin', password: 'adminpw', protocolVersion: 5 });
  assert.deepEqual(await watch.subscribe('#', 0), [0]);

  const carol = await JsClient.connect(url, { clientId: 'carol-1', username: 'carol', password: 'carolpw', protocolVersion: 5 });
  await carol.publish('files/from-carol', 'c1', 1);
  await carol.publish('dyn/from-carol', 'c2', 1).catch(() => undefined); // PUBACK 0x87
  const alice = await JsClient.connect(url, { clientId: 'alice-1', username: 'alice', password: 'dynpw', protocolVersion: 5 });
  await alice.publish('dyn/from-alice', 'a1', 1);
  await alice.publish('files/alice/x', 'a2', 1);
  await alice.publish('files/blocked', 'a3', 1).catch(() => undefined);
  await assert.rejects(JsClient.connect(url, { clientId: 'alice-2', username: 'alice', password: 'filepw', protocolVersion: 5 }));
  await assert.rejects(JsClient.connect(url, { clientId: 'nobody', protocolVersion: 5 }));
  // A marker published last: everything before it has been routed.
  await alice.publish('dyn/marker', 'm', 1);
  await watch.waitMessage('dyn/marker');
  const got = watch.messages.map((m) => m.topic).filter((x) => x !== 'dyn/marker').sort();
  assert.deepEqual(got, ['dyn/from-alice', 'files/alice/x', 'files/from-carol']);
  // The admin (dynsec) still runs commands.
  assert.deepEqual(await watch.subscribe(RESPONSE, 0), [0]);
  const r = await command(watch, { command: 'getClient', username: 'alice' });
  assert.equal(r.error, undefined, JSON.stringify(r));
  await Promise.all([watch.end(), carol.end(), alice.end()]);
});
