/** HTTP authentication hook (against a real node:http server) and JWT (tokens signed with jose). */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportSPKI, generateKeyPair } from 'jose';
import { RawClient } from '../testing/harness.js';
import { JsClient, endAllJs, sleep, tempDir } from '../interop/helpers.js';
import { HttpAuthenticator } from './http-auth.js';
import { startAuthNode } from './testing.js';

const dir = tempDir('skein-authx-');
after(async () => {
  await endAllJs();
  dir.remove();
});

async function connack(port: number, version: 4 | 5, connect: Record<string, unknown>): Promise<number> {
  const c = await RawClient.connect(port, version);
  try {
    const ack = await c.handshake(connect);
    return (version === 5 ? ack.reasonCode : ack.returnCode) ?? -1;
  } finally {
    c.destroy();
  }
}

async function canPublish(c: JsClient, topic: string): Promise<boolean> {
  try {
    await c.publish(topic, 'x', 1);
    return true;
  } catch {
    return false;
  }
}

interface Hook {
  url: string;
  bodies: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

async function startHook(answer: (body: Record<string, unknown>) => { status: number; body?: unknown; delayMs?: number }): Promise<Hook> {
  const bodies: Array<Record<string, unknown>> = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      const body = JSON.parse(data) as Record<string, unknown>;
      bodies.push(body);
      const a = answer(body);
      setTimeout(() => {
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(a.body === undefined ? '' : JSON.stringify(a.body));
      }, a.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/auth`,
    bodies,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe('HTTP authentication hook', () => {
  it('allow / deny / acl / superuser / timeout, with a cache', { timeout: 30_000 }, async (t) => {
    const hook = await startHook((b) => {
      if (b.username === 'slow') return { status: 200, body: { result: 'allow' }, delayMs: 1500 };
      if (b.username === 'err') return { status: 500 };
      if (b.password !== 'ok') return { status: 200, body: { result: 'deny' } };
      if (b.username === 'root') return { status: 200, body: { result: 'allow', superuser: true } };
      return {
        status: 200,
        body: { result: 'allow', acl: [{ permission: 'deny', action: 'publish', topic: 'dev/${clientid}/locked' }, { permission: 'allow', action: 'all', topic: 'dev/${clientid}/#' }] },
      };
    });
    t.after(() => hook.close());
    const { node, port, url } = await startAuthNode({ http: { url: hook.url, timeoutMs: 500, cacheTtlMs: 60_000 } });
    t.after(() => node.stop());

    assert.equal(await connack(port, 5, { clientId: 'd1', username: 'u', password: Buffer.from('bad') }), 0x86);
    assert.equal(await connack(port, 4, { clientId: 'd1', username: 'u', password: Buffer.from('bad') }), 4);
    assert.equal(await connack(port, 5, { clientId: 'd1', username: 'err', password: Buffer.from('ok') }), 0x86);
    assert.equal(await connack(port, 5, { clientId: 'd1', username: 'slow', password: Buffer.from('ok') }), 0x88);
    assert.equal(await connack(port, 4, { clientId: 'd1', username: 'slow', password: Buffer.from('ok') }), 3);
    const first = hook.bodies.find((b) => b.username === 'u')!;
    assert.equal(first.clientId, 'd1');
    assert.equal(first.password, 'bad');
    assert.match(String(first.remoteAddress), /^127\.0\.0\.1:\d+$/);

    // The same answer again comes from the cache (one request for two CONNECTs with the same data).
    const before = hook.bodies.length;
    assert.equal(await connack(port, 5, { clientId: 'd1', username: 'u', password: Buffer.from('bad') }), 0x86);
    assert.equal(hook.bodies.length, before);

    const dev = await JsClient.connect(url, { protocolVersion: 5, clientId: 'dev9', username: 'u', password: 'ok' });
    assert.equal(await canPublish(dev, 'dev/dev9/temp'), true);
    assert.equal(await canPublish(dev, 'dev/dev9/locked'), false);
    assert.equal(await canPublish(dev, 'dev/other/temp'), false);
    const root = await JsClient.connect(url, { protocolVersion: 5, clientId: 'adm', username: 'root', password: 'ok' });
    assert.equal(await canPublish(root, 'anything/at/all'), true);
    assert.deepEqual(await root.subscribe('#', 0), [0]);
    // No ACL from the hook and no ACL file: everything is allowed.
    await dev.end();
    await root.end();
  });

  it('connection refused denies with 0x88; the cache is bounded (LRU)', async () => {
    const closed = await startHook(() => ({ status: 200, body: { result: 'allow' } }));
    const u = closed.url;
    await closed.close();
    const a = new HttpAuthenticator({ url: u, timeoutMs: 1000, cacheTtlMs: 60_000, cacheSize: 2 });
    const r = await a.check({ clientId: 'c', username: 'u', password: Buffer.from('p'), remoteAddress: '127.0.0.1:1', protocolVersion: 5 });
    assert.equal(r.kind, 'error');
    const hook = await startHook(() => ({ status: 200, body: { result: 'allow' } }));
    try {
      const b = new HttpAuthenticator({ url: hook.url, timeoutMs: 1000, cacheTtlMs: 60_000, cacheSize: 2 });
      const creds = (id: string) => ({ clientId: id, username: 'u', password: Buffer.from('p'), remoteAddress: '127.0.0.1:1', protocolVersion: 5 as const });
      for (const id of ['a', 'b', 'a', 'c', 'a', 'b']) assert.equal((await b.check(creds(id))).kind, 'allow');
      // a, b miss; a hits; c misses (evicts b, the least recently used); a hits; b misses.
      assert.equal(b.requests, 4);
      assert.equal(b.cacheEntries, 2);
    } finally {
      await hook.close();
    }
  });
});

describe('JWT', () => {
  const secret = 'a-test-secret-of-enough-length-0123456789';
  const hs = (claims: Record<string, unknown>, exp: string | number = '1h') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(secret));

  it('HS256: valid tokens in, expired or forged ones 0x86 / 4; username, client id and ACL claims', async (t) => {
    const { node, port, url } = await startAuthNode({ jwt: { secret, clientIdClaim: 'cid', aclClaim: 'acl' } });
    t.after(() => node.stop());
    const good = await hs({ sub: 'sam', cid: 'sam-1', acl: { pub: ['out/%c/#'], sub: ['in/%u/#'] } });
    assert.equal(await connack(port, 5, { clientId: 'sam-1', username: 'sam', password: Buffer.from(good) }), 0);
    assert.equal(await connack(port, 4, { clientId: 'sam-1', username: 'sam', password: Buffer.from(good) }), 0);
    assert.equal(await connack(port, 5, { clientId: 'other', username: 'sam', password: Buffer.from(good) }), 0x86); // client id claim
    assert.equal(await connack(port, 5, { clientId: 'sam-1', username: 'notsam', password: Buffer.from(good) }), 0x86); // username claim
    const expired = await hs({ sub: 'sam', cid: 'sam-1' }, Math.floor(Date.now() / 1000) - 60);
    assert.equal(await connack(port, 5, { clientId: 'sam-1', username: 'sam', password: Buffer.from(expired) }), 0x86);
    assert.equal(await connack(port, 4, { clientId: 'sam-1', username: 'sam', password: Buffer.from(expired) }), 4);
    const forged = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    assert.equal(await connack(port, 5, { clientId: 'sam-1', username: 'sam', password: Buffer.from(forged) }), 0x86);
    assert.equal(await connack(port, 5, { clientId: 'sam-1', username: 'sam', password: Buffer.from('not a token') }), 0x86);

    const sam = await JsClient.connect(url, { protocolVersion: 5, clientId: 'sam-1', username: 'sam', password: good });
    assert.equal(await canPublish(sam, 'out/sam-1/x'), true);
    assert.equal(await canPublish(sam, 'out/sam-2/x'), false);
    assert.deepEqual(await sam.subscribe('in/sam/#', 1), [1]);
    await sam.end();
    // A token without the ACL claim is granted nothing.
    const bare = await hs({ sub: 'tom', cid: 'tom-1' });
    const tom = await JsClient.connect(url, { protocolVersion: 5, clientId: 'tom-1', username: 'tom', password: bare });
    assert.equal(await canPublish(tom, 'out/tom-1/x'), false);
    await tom.end();
  });

  it('RS256 with a PEM public key file', async (t) => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const pem = join(dir.path, 'pub.pem');
    writeFileSync(pem, await exportSPKI(publicKey));
    const { node, port } = await startAuthNode({ jwt: { publicKey: pem } });
    t.after(() => node.stop());
    const token = await new SignJWT({ sub: 'rita' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(privateKey);
    assert.equal(await connack(port, 5, { username: 'rita', password: Buffer.from(token) }), 0);
    const hsToken = await hs({ sub: 'rita' });
    assert.equal(await connack(port, 5, { username: 'rita', password: Buffer.from(hsToken) }), 0x86);
    await sleep(10);
  });
});
