// Aedes (npm aedes, a development dependency) as a plain TCP MQTT broker for bench/run.sh.
//
//   node bench/aedes-server.mjs PORT [HOST]
//
// In-memory persistence (aedes-persistence, the default), so retained messages and offline
// QoS 1/2 queues live in this process like Mosquitto's and Skein's. Aedes has no per-session
// queue limit or outbound in-flight limit to configure (its `queueLimit` only bounds packets that
// arrive before CONNECT has been handled); everything else is its default, except TCP_NODELAY on
// every socket (Mosquitto runs with set_tcp_nodelay true, Skein always sets it).
// Prints "aedes listening on HOST:PORT" when ready; SIGTERM/SIGINT close it.
import net from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2] ?? 1883);
const host = process.argv[3] ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`usage: node bench/aedes-server.mjs PORT [HOST] (got ${process.argv[2]})`);
  process.exit(2);
}

const aedes = await Aedes.createBroker();
const server = net.createServer({ noDelay: true }, aedes.handle);
server.on('error', (err) => {
  console.error(`aedes-server: ${err.message}`);
  process.exit(1);
});
server.listen(port, host, () => {
  const a = server.address();
  console.log(`aedes listening on ${a.address}:${a.port}`);
});

let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  server.close();
  aedes.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
