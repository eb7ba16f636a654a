/**
 * Ports for test processes started later (a broker node, HAProxy) whose port must be known
 * first (to put it in another process's configuration).
 *
 * Why not `listen(0)`: that picks from the kernel's ephemeral range, which is also where every
 * outgoing connection of every test running in parallel gets its local port. Between picking a
 * port and the process binding it (a node takes a few hundred milliseconds to start) such a
 * connection could take it, and the process failed with EADDRINUSE (seen in the drain test).
 * Ports below the ephemeral range are never handed out that way, so a port found free here stays
 * free unless another test picks the same one (random among thousands).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** The first port of the kernel's ephemeral range (Linux), 32768 when it cannot be read. */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 0 ? first : 32768;
  } catch {
    return 32768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A TCP port free on 127.0.0.1 now, outside the ephemeral range when there is room below it. */
export async function freePort(): Promise<number> {
  const high = Math.min(ephemeralStart(), 65536);
  const low = 10000;
  if (high - low >= 1000) {
    for (let i = 0; i < 50; i++) {
      const port = low + Math.floor(Math.random() * (high - low));
      if (await canListen(port)) return port;
    }
  }
  // No room below the ephemeral range (or all tried ports busy): let the kernel pick.
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}
