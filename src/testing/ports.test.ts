import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { freePort } from './ports.js';

test('freePort: a port that can be bound on 127.0.0.1, below the ephemeral range outgoing connections use', async () => {
  const ephemeral = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    if (ephemeral - 10000 >= 1000) assert.ok(port >= 10000 && port < ephemeral, `${port} below ${ephemeral}`);
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((r) => srv.close(r));
  }
});
