/**
 * Dynamic Security: the state model and ACL order (unit), the command API (unit), and over real
 * sockets with the real Mosquitto tools (`mosquitto_ctrl`, `mosquitto_pub`) on one node and on a
 * two-node cluster sharing Redis.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultConfig, type SkeinConfig } from '../../config/schema.js';
import { createLogger } from '../../log.js';
import { startNode, type SkeinNode } from '../../node.js';
import { JsClient, endAllJs, sleep, tempDir, within } from '../../interop/helpers.js';
import { startRedis } from '../../testing/redis.js';
import { runCommands } from './commands.js';
import { checkAcl, parseState, serializeState, verifyPassword, type DynsecState } from './state.js';

// What `mosquitto_ctrl dynsec init f admin adminpw` (Mosquitto 2.0.11) wrote, unchanged.
const MOSQUITTO_INIT = `{
	"clients":	[{
			"username":	"admin",
			"textName":	"Dynsec admin user",
			"password":	"Rj2jS7OQkmaZ+lHcdJZTYiZN9HkD+KYEwE1n+xOuEvGr7N5Z6KnY15b3vkIE2+yn/Mqn50oAAuRRf0WU/2TP0A==",
			"salt":	"5hPJk/7d2mmy0KT5",
			"iterations":	101,
			"roles":	[{ "rolename":	"admin" }]
		}],
	"roles":	[{
			"rolename":	"admin",
			"acls":	[{ "acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": true },
				{ "acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "allow": true },
				{ "acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": true },
				{ "acltype": "publishClientReceive", "topic": "$SYS/#", "allow": true },
				{ "acltype": "subscribePattern", "topic": "$SYS/#", "allow": true },
				{ "acltype": "publishClientReceive", "topic": "#", "allow": true },
				{ "acltype": "subscribePattern", "topic": "#", "allow": true },
				{ "acltype": "unsubscribePattern", "topic": "#", "allow": true }]
		}],
	"defaultACLAccess":	{ "publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true }
}`;

async function run(state: DynsecState, ...commands: object[]) {
  return runCommands(state, JSON.stringify({ commands }));
}

test('dynsec file: loads what mosquitto_ctrl init writes; $7$-style password verifies; saves in the plugin format', async () => {
  const s = parseState(MOSQUITTO_INIT);
  const admin = s.clients.get('admin')!;
  assert.equal(admin.textname, 'Dynsec admin user', 'textName is read case-insensitively, as cJSON does');
  assert.equal(admin.password!.iterations, 101);
  assert.equal(await verifyPassword(admin.password!, Buffer.from('adminpw')), true);
  assert.equal(await verifyPassword(admin.password!, Buffer.from('wrong')), false);
  const saved = JSON.parse(serializeState(s)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(saved), ['defaultACLAccess', 'clients', 'groups', 'roles']);
  const c = (saved.clients as Array<Record<string, unknown>>)[0]!;
  assert.deepEqual(Object.keys(c), ['username', 'textname', 'roles', 'password', 'salt', 'iterations']);
  assert.equal(c.salt, '5hPJk/7d2mmy0KT5');
  const acls = (saved.roles as Array<{ acls: Array<Record<string, unknown>> }>)[0]!.acls;
  assert.deepEqual(acls[0], { acltype: 'publishClientSend', topic: '$CONTROL/dynamic-security/#', priority: 0, allow: true });
  assert.deepEqual(
    acls.map((a) => a.acltype),
    ['publishClientSend', 'publishClientReceive', 'publishClientReceive', 'publishClientReceive', 'subscribePattern', 'subscribePattern', 'subscribePattern', 'unsubscribePattern'],
  );
  // Round trip.
  assert.equal(serializeState(parseState(serializeState(s))), serializeState(s));
});

test('dynsec ACL: defaults, $CONTROL never by default, priorities, client roles before groups, literal vs pattern', async () => {
  const s = parseState(MOSQUITTO_INIT);
  // Admin: receive of `#` does not cover `$SYS` (wildcards do not match `$` topics), `$SYS/#` does.
  assert.equal(checkAcl(s, 'admin', 'publishClientSend', '$CONTROL/dynamic-security/v1'), 'allow');
  assert.equal(checkAcl(s, 'admin', 'publishClientSend', 'a/b'), 'defer', 'default publishClientSend is deny');
  assert.equal(checkAcl(s, 'admin', 'subscribe', '$SYS/broker/uptime'), 'allow');
  assert.equal(checkAcl(s, 'nobody', 'subscribe', '#'), 'defer', 'unknown username');
  await run(
    s,
    { command: 'createClient', username: 'u', password: 'p' },
    { command: 'createRole', rolename: 'low' },
    { command: 'createRole', rolename: 'high' },
    { command: 'createRole', rolename: 'grp' },
    { command: 'addRoleACL', rolename: 'low', acltype: 'publishClientSend', topic: 'x/#', allow: true },
    { command: 'addRoleACL', rolename: 'high', acltype: 'publishClientSend', topic: 'x/secret', allow: false },
    { command: 'addRoleACL', rolename: 'low', acltype: 'subscribePattern', topic: 'x/+', allow: true },
    { command: 'addRoleACL', rolename: 'low', acltype: 'subscribeLiteral', topic: 'x/+', allow: false },
    { command: 'addRoleACL', rolename: 'grp', acltype: 'publishClientSend', topic: 'g/#', allow: true },
    { command: 'addRoleACL', rolename: 'grp', acltype: 'publishClientSend', topic: 'x/#', allow: false },
    { command: 'addClientRole', username: 'u', rolename: 'low', priority: 1 },
    { command: 'addClientRole', username: 'u', rolename: 'high', priority: 5 },
    { command: 'createGroup', groupname: 'G' },
    { command: 'addGroupRole', groupname: 'G', rolename: 'grp' },
    { command: 'addGroupClient', groupname: 'G', username: 'u' },
  );
  assert.equal(checkAcl(s, 'u', 'publishClientSend', 'x/a'), 'allow', 'client role before the group deny');
  assert.equal(checkAcl(s, 'u', 'publishClientSend', 'x/secret'), 'deny', 'higher-priority role decides first');
  assert.equal(checkAcl(s, 'u', 'publishClientSend', 'g/1'), 'allow', 'group role');
  assert.equal(checkAcl(s, 'u', 'publishClientReceive', 'anything'), 'allow', 'default receive allow');
  assert.equal(checkAcl(s, 'u', 'publishClientReceive', '$CONTROL/dynamic-security/v1/response'), 'defer', '$CONTROL not by default');
  assert.equal(checkAcl(s, 'u', 'subscribe', 'x/1'), 'allow', 'pattern covers the filter');
  assert.equal(checkAcl(s, 'u', 'subscribe', 'x/+'), 'deny', 'literal ACL matches the exact filter first');
  assert.equal(checkAcl(s, 'u', 'subscribe', 'x/#'), 'defer', 'x/+ does not cover x/#');
  // ACL priority inside one role: the higher wins even when added later.
  await run(s, { command: 'addRoleACL', rolename: 'low', acltype: 'publishClientSend', topic: 'x/+', allow: false, priority: 9 });
  assert.equal(checkAcl(s, 'u', 'publishClientSend', 'x/a'), 'deny');
  // Anonymous clients use the anonymous group.
  assert.equal(checkAcl(s, undefined, 'publishClientSend', 'g/1'), 'defer');
  await run(s, { command: 'setAnonymousGroup', groupname: 'G' });
  assert.equal(checkAcl(s, undefined, 'publishClientSend', 'g/1'), 'allow');
  await run(s, { command: 'setDefaultACLAccess', acls: [{ acltype: 'publishClientSend', allow: true }] });
  assert.equal(checkAcl(s, 'admin', 'publishClientSend', 'free/topic'), 'allow');
  assert.equal(checkAcl(s, 'admin', 'publishClientSend', '$CONTROL/other'), 'defer', '$CONTROL never by default');
});

test('dynsec commands: responses, errors and correlationData as the plugin sends them', async () => {
  const s = parseState(MOSQUITTO_INIT);
  const r = await run(
    s,
    { command: 'createClient', username: 'alice', password: 'secret', clientid: 'cid' },
    { command: 'createClient', username: 'alice' },
    { command: 'createRole', rolename: 'r1' },
    { command: 'addRoleACL', rolename: 'r1', acltype: 'publishClientSend', topic: 'sensors/#', allow: true, priority: 5 },
    { command: 'addRoleACL', rolename: 'r1', acltype: 'subscribePattern', topic: 'sensors/#', allow: true },
    { command: 'addClientRole', username: 'alice', rolename: 'r1', priority: 3 },
    { command: 'createGroup', groupname: 'g1' },
    { command: 'addGroupRole', groupname: 'g1', rolename: 'r1', priority: 2 },
    { command: 'addGroupClient', groupname: 'g1', username: 'alice', priority: 4 },
    { command: 'getClient', username: 'alice', correlationData: 'c1' },
    { command: 'getClient', username: 'bob' },
    { command: 'listClients' },
    { command: 'getRole', rolename: 'r1' },
    { command: 'getGroup', groupname: 'g1' },
    { command: 'getDefaultACLAccess' },
    { command: 'getAnonymousGroup' },
    { command: 'deleteRole', rolename: 'nosuch' },
    { command: 'bogus' },
    { command: 'addRoleACL', rolename: 'r1', acltype: 'bad', topic: 'x', allow: true },
    { command: 'addRoleACL', rolename: 'r1', acltype: 'publishClientSend', topic: 'a/#/b', allow: true },
    { command: 'getClient', username: 'alice', correlationData: 5 },
    { command: 'listRoles' },
  );
  assert.deepEqual(r.responses, [
    { command: 'createClient' },
    { command: 'createClient', error: 'Client already exists' },
    { command: 'createRole' },
    { command: 'addRoleACL' },
    { command: 'addRoleACL' },
    { command: 'addClientRole' },
    { command: 'createGroup' },
    { command: 'addGroupRole' },
    { command: 'addGroupClient' },
    {
      command: 'getClient',
      data: { client: { username: 'alice', clientid: 'cid', roles: [{ rolename: 'r1', priority: 3 }], groups: [{ groupname: 'g1', priority: 4 }] } },
      correlationData: 'c1',
    },
    { command: 'getClient', error: 'Client not found' },
    { command: 'listClients', data: { totalCount: 2, clients: ['admin', 'alice'] } },
    {
      command: 'getRole',
      data: {
        role: {
          rolename: 'r1',
          acls: [
            { acltype: 'publishClientSend', topic: 'sensors/#', priority: 5, allow: true },
            { acltype: 'subscribePattern', topic: 'sensors/#', priority: 0, allow: true },
          ],
        },
      },
    },
    { command: 'getGroup', data: { group: { groupname: 'g1', clients: [{ username: 'alice' }], roles: [{ rolename: 'r1', priority: 2 }] } } },
    {
      command: 'getDefaultACLAccess',
      data: {
        acls: [
          { acltype: 'publishClientSend', allow: false },
          { acltype: 'publishClientReceive', allow: true },
          { acltype: 'subscribe', allow: false },
          { acltype: 'unsubscribe', allow: true },
        ],
      },
    },
    { command: 'getAnonymousGroup', data: { group: { groupname: '' } } },
    { command: 'deleteRole', error: 'Role not found' },
    { command: 'bogus', error: 'Unknown command' },
    { command: 'addRoleACL', error: 'Invalid/missing acltype' },
    { command: 'addRoleACL', error: 'Invalid ACL topic' },
    // A bad correlationData ends the payload (listRoles is not run), as in the plugin.
    { command: 'getClient', error: 'Invalid correlationData data type.' },
  ]);
  assert.equal(r.changed, true);
  const bad = await runCommands(s, 'not json');
  assert.deepEqual(bad.responses, [{ command: 'Unknown command', error: 'Payload not valid JSON' }]);
  // Kicks: disable and delete, role and group changes (Mosquitto re-checks by reconnecting them).
  assert.deepEqual([...(await run(s, { command: 'disableClient', username: 'alice' })).kick], ['alice']);
  assert.deepEqual([...(await run(s, { command: 'addRoleACL', rolename: 'r1', acltype: 'publishClientReceive', topic: 'q', allow: false })).kick], ['alice']);
  assert.equal((await run(s, { command: 'setClientPassword', username: 'alice', password: 'x' })).kick.size, 0);
  // Listing with paging and verbose.
  const l = await run(s, { command: 'listClients', verbose: true, count: 1, offset: 1 });
  assert.deepEqual(l.responses[0]!.data, {
    totalCount: 2,
    clients: [{ username: 'alice', clientid: 'cid', disabled: true, roles: [{ rolename: 'r1', priority: 3 }], groups: [{ groupname: 'g1', priority: 4 }] }],
  });
});

// ------------------------------------------------------------------------------------ sockets

const CTRL = '/usr/bin/mosquitto_ctrl';
const PUB = '/usr/bin/mosquitto_pub';

function exec(file: string, args: string[], ms = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: ms }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function ctrl(port: number, ...args: string[]) {
  return exec(CTRL, ['-h', '127.0.0.1', '-p', String(port), '-u', 'admin', '-P', 'adminpw', 'dynsec', ...args]);
}
async function ctrlOk(port: number, ...args: string[]): Promise<string> {
  const r = await ctrl(port, ...args);
  assert.equal(r.code, 0, `mosquitto_ctrl ${args.join(' ')}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Error/, `mosquitto_ctrl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

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
async function start(c: SkeinConfig): Promise<{ node: SkeinNode; port: number }> {
  const node = await startNode(c, { logger: createLogger(c.logLevel) });
  return { node, port: node.addresses[0]!.port };
}

test('dynsec with the real mosquitto_ctrl: create, ACLs, allowed and refused, disable disconnects, file saved', { timeout: 90_000 }, async (t) => {
  const dir = tempDir('skein-dynsec-');
  t.after(() => dir.remove());
  const cfg = nodeConfig(dir.path);
  let { node, port } = await start(cfg);
  t.after(async () => {
    await endAllJs();
    await node.stop();
  });
  assert.ok(existsSync(cfg.auth.dynsec.file), 'file created with the admin client');
  const url = () => `mqtt://127.0.0.1:${port}`;

  await ctrlOk(port, 'createClient', 'alice', '-p', 'secret');
  await ctrlOk(port, 'createRole', 'r1');
  await ctrlOk(port, 'addRoleACL', 'r1', 'publishClientSend', 'sensors/#', 'allow');
  await ctrlOk(port, 'addRoleACL', 'r1', 'subscribePattern', 'sensors/#', 'allow');
  await ctrlOk(port, 'addClientRole', 'alice', 'r1', '5');
  const dup = await ctrl(port, 'createClient', 'alice', '-p', 'x');
  assert.match(dup.stderr, /Client already exists/);

  // Outputs of get/list commands parse.
  const got = await ctrlOk(port, 'getClient', 'alice');
  assert.match(got, /Username: alice/);
  assert.match(got, /Roles:\s+r1 \(priority: 5\)/);
  const list = await ctrlOk(port, 'listClients');
  assert.deepEqual(list.trim().split('\n'), ['admin', 'alice']);
  assert.match(await ctrlOk(port, 'getRole', 'r1'), /publishClientSend\s+: allow : sensors\/#/);
  assert.match(await ctrlOk(port, 'getDefaultACLAccess'), /publishClientSend\s+: deny/);
  assert.match((await ctrl(port, 'getClient', 'bob')).stderr, /Client not found/);

  // The admin sees what alice may publish (admin: receive and subscribe `#`).
  const watch = await JsClient.connect(url(), { clientId: 'watch', username: 'admin', password: 'adminpw', protocolVersion: 5 });
  await watch.subscribe('#', 1);
  const ok = await exec(PUB, ['-h', '127.0.0.1', '-p', String(port), '-u', 'alice', '-P', 'secret', '-q', '1', '-t', 'sensors/t1', '-m', 'allowed']);
  assert.equal(ok.code, 0, ok.stderr);
  await watch.waitMessage('sensors/t1', 5000, 'allowed');
  await exec(PUB, ['-h', '127.0.0.1', '-p', String(port), '-u', 'alice', '-P', 'secret', '-q', '1', '-t', 'other/t1', '-m', 'refused']);
  const bad = await exec(PUB, ['-h', '127.0.0.1', '-p', String(port), '-u', 'alice', '-P', 'wrong', '-t', 'sensors/t1', '-m', 'badpw']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not authori[sz]ed/i);
  // alice may not use the command API (no $CONTROL grant): nothing happens.
  await exec(PUB, ['-h', '127.0.0.1', '-p', String(port), '-u', 'alice', '-P', 'secret', '-t', '$CONTROL/dynamic-security/v1', '-m', '{"commands":[{"command":"deleteClient","username":"admin"}]}']);
  await sleep(300);
  assert.equal(watch.messages.some((m) => m.topic === 'other/t1'), false, 'publish outside the ACL not delivered');
  assert.equal(watch.messages.some((m) => m.topic.startsWith('$CONTROL')), false, 'commands are not delivered to subscribers');
  assert.ok(node.broker.authorizer.authorizePublish({ clientId: 'x', username: 'admin', remoteAddress: '', protocolVersion: 5 }, '$CONTROL/dynamic-security/v1'), 'admin still there');

  // alice connected; disableClient closes her connection (v5: 0x98 Administrative action) and
  // refuses her from then on; enableClient lets her in again.
  const alice = await JsClient.connect(url(), { clientId: 'alice-1', username: 'alice', password: 'secret', protocolVersion: 5 });
  assert.deepEqual(await alice.subscribe('sensors/#', 0), [0]);
  await ctrlOk(port, 'disableClient', 'alice');
  await alice.waitFor(() => alice.closed, 5000, 'alice disconnected');
  assert.equal(alice.disconnects[0]?.reasonCode, 0x98);
  await assert.rejects(JsClient.connect(url(), { clientId: 'alice-2', username: 'alice', password: 'secret', protocolVersion: 5 }));
  await ctrlOk(port, 'enableClient', 'alice');
  const again = await JsClient.connect(url(), { clientId: 'alice-3', username: 'alice', password: 'secret', protocolVersion: 5 });
  // Removing the ACL applies to new operations (and, as in Mosquitto, reconnects her).
  await ctrlOk(port, 'removeRoleACL', 'r1', 'publishClientSend', 'sensors/#');
  await again.waitFor(() => again.closed, 5000, 'alice kicked on a change of her role');
  const after = await exec(PUB, ['-h', '127.0.0.1', '-p', String(port), '-u', 'alice', '-P', 'secret', '-q', '1', '-t', 'sensors/t2', '-m', 'late']);
  assert.equal(after.code, 0, after.stderr);
  await sleep(300);
  assert.equal(watch.messages.some((m) => m.topic === 'sensors/t2'), false, 'removed ACL applies at once');

  // The file is Mosquitto's format and survives a restart.
  const doc = JSON.parse(readFileSync(cfg.auth.dynsec.file, 'utf8')) as { clients: Array<Record<string, unknown>> };
  const a = doc.clients.find((c) => c.username === 'alice')!;
  assert.equal(a.iterations, 101);
  assert.equal(Buffer.from(a.salt as string, 'base64').length, 12);
  assert.equal(Buffer.from(a.password as string, 'base64').length, 64);
  await watch.end();
  await node.stop();
  ({ node, port } = await start(cfg));
  const back = await JsClient.connect(url(), { clientId: 'alice-4', username: 'alice', password: 'secret', protocolVersion: 4 });
  await back.end();
  await ctrlOk(port, 'deleteClient', 'alice');
  await assert.rejects(JsClient.connect(url(), { clientId: 'alice-5', username: 'alice', password: 'secret', protocolVersion: 4 }));
});

test('dynsec refuses to start without a file and without an admin password', async () => {
  const dir = tempDir('skein-dynsec-');
  try {
    const cfg = nodeConfig(dir.path, (c) => (c.auth.dynsec.adminPassword = ''));
    await assert.rejects(startNode(cfg, { logger: createLogger('silent') }), /adminPassword/);
    // An existing file needs no password.
    writeFileSync(cfg.auth.dynsec.file, MOSQUITTO_INIT);
    const { node, port } = await start(cfg);
    try {
      assert.match(await ctrlOk(port, 'listClients'), /admin/);
    } finally {
      await node.stop();
    }
  } finally {
    dir.remove();
  }
});

test('dynsec in a cluster: the state is in Redis; a change on one node applies on the other', { timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const dir = tempDir('skein-dynsec-cluster-');
  t.after(() => dir.remove());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const cfg = (id: string) =>
    nodeConfig(dir.path, (c) => {
      c.nodeId = id;
      c.cluster.redis = redisUrl;
      c.cluster.heartbeatMs = 200;
      c.cluster.nodeTtlMs = 1500;
      c.auth.dynsec.file = join(dir.path, `seed-${id}.json`);
    });
  const a = await start(cfg('a'));
  const b = await start(cfg('b'));
  t.after(async () => {
    await endAllJs();
    await Promise.all([a.node.stop(), b.node.stop()]);
  });
  await ctrlOk(a.port, 'createClient', 'bob', '-p', 'pw');
  await ctrlOk(a.port, 'createRole', 'r');
  await ctrlOk(a.port, 'addRoleACL', 'r', 'publishClientSend', 'b/#', 'allow');
  await ctrlOk(a.port, 'addClientRole', 'bob', 'r');
  // Node b knows bob at once (pub/sub notice; the 1 s poll is the fallback).
  const bob = await within(
    (async () => {
      for (;;) {
        try {
          return await JsClient.connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'bob-1', username: 'bob', password: 'pw', protocolVersion: 5 });
        } catch {
          await sleep(100);
        }
      }
    })(),
    5000,
    'bob connects to node b',
  );
  assert.ok(b.node.broker.authorizer.authorizePublish({ clientId: 'bob-1', username: 'bob', remoteAddress: '', protocolVersion: 5 }, 'b/1'));
  // Listing on b shows what a created (one shared document).
  assert.deepEqual((await ctrlOk(b.port, 'listClients')).trim().split('\n'), ['admin', 'bob']);
  // Disabled on a: bob's connection on b is closed.
  await ctrlOk(a.port, 'disableClient', 'bob');
  await bob.waitFor(() => bob.closed, 5000, 'bob disconnected from node b');
  await assert.rejects(JsClient.connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'bob-2', username: 'bob', password: 'pw', protocolVersion: 5 }));
  // Changes from both nodes in a row are all kept (compare-and-set on the version).
  await Promise.all([ctrlOk(a.port, 'createRole', 'ra'), ctrlOk(b.port, 'createRole', 'rb')]);
  const roles = (await ctrlOk(a.port, 'listRoles')).trim().split('\n');
  assert.deepEqual(roles, ['admin', 'r', 'ra', 'rb']);
});
