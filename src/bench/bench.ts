/**
 * A small load generator for side-by-side runs against any MQTT broker (Skein, Mosquitto, Aedes).
 * It speaks raw MQTT 3.1.1 over TCP with pre-encoded packets so the generator costs little per
 * message. Scenarios: fan-in (N publishers -> 1 subscriber) at QoS 0/1/2 with a window of
 * in-flight messages per publisher, fan-out (1 -> N subscribers).
 *
 *   node dist/bench/bench.js --port 1883 --scenario fanin --qos 1 --publishers 10 --seconds 5
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { parseArgs } from 'node:util';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';

interface Peer {
  socket: net.Socket;
  onPacket: (p: Packet) => void;
}

async function connect(port: number, host: string, clientId: string, onPacket: (p: Packet) => void, clean = true): Promise<Peer> {
  const socket = net.connect(port, host);
  socket.setNoDelay(true);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const peer: Peer = { socket, onPacket };
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'connack') {
        socket.off('error', reject);
        resolve();
        return;
      }
      peer.onPacket(p);
    });
    socket.on('data', (d) => parser.parse(d));
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean, keepalive: 60 }));
  });
  socket.on('error', () => undefined);
  return peer;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '1883' },
      'sub-port': { type: 'string' },
      persistent: { type: 'boolean', default: false },
      rate: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      scenario: { type: 'string', default: 'fanin' },
      qos: { type: 'string', default: '0' },
      publishers: { type: 'string', default: '10' },
      subscribers: { type: 'string', default: '50' },
      window: { type: 'string', default: '32' },
      seconds: { type: 'string', default: '5' },
      payload: { type: 'string', default: '64' },
    },
  });
  const port = Number(values.port);
  const host = values.host!;
  const qos = Number(values.qos) as 0 | 1 | 2;
  const seconds = Number(values.seconds);
  const payload = Buffer.alloc(Number(values.payload), 0);
  const fanout = values.scenario === 'fanout';
  const nPub = fanout ? 1 : Number(values.publishers);
  const nSub = fanout ? Number(values.subscribers) : 1;
  const window = Number(values.window);
  const topic = 'bench/t';
  const subPort = values['sub-port'] ? Number(values['sub-port']) : port;
  // Fixed rate (messages/s over all publishers) for latency runs; 0 = as fast as the window allows.
  const rate = Number(values.rate);
  if (payload.length < 8) throw new Error('--payload must be at least 8 bytes (send time)');

  let received = 0;
  const latencies: number[] = [];
  let measuring = false;
  const subs: Peer[] = [];
  for (let i = 0; i < nSub; i++) {
    const peer = await connect(subPort, host, `bench-sub-${i}`, () => undefined, !values.persistent);
    subs.push(peer);
    peer.onPacket = (p) => {
      if (p.cmd === 'publish') {
        received++;
        if (measuring && latencies.length < 1_000_000) {
          const sentAt = (p.payload as Buffer).readDoubleLE(0);
          if (sentAt > 0) latencies.push(performance.now() - sentAt);
        }
        if (p.qos === 1) peer.socket.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId! }));
        else if (p.qos === 2) peer.socket.write(mqttPacket.generate({ cmd: 'pubrec', messageId: p.messageId! }));
      } else if (p.cmd === 'pubrel') peer.socket.write(mqttPacket.generate({ cmd: 'pubcomp', messageId: p.messageId! }));
    };
    await new Promise<void>((resolve) => {
      const prev = peer.onPacket;
      peer.onPacket = (p) => {
        if (p.cmd === 'suback') {
          peer.onPacket = prev;
          resolve();
        } else prev(p);
      };
      peer.socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }));
    });
  }

  let sent = 0;
  let stop = false;
  const pubs: Peer[] = [];
  for (let i = 0; i < nPub; i++) {
    let nextId = 1;
    let inflight = 0;
    const peer = await connect(port, host, `bench-pub-${i}`, () => undefined);
    const pre0 = mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
    const stamp = (): Buffer => {
      payload.writeDoubleLE(performance.now(), 0);
      return payload;
    };
    const fill = () => {
      if (stop) return;
      if (rate > 0) return; // paced by the timer below
      if (qos === 0) {
        // Keep the socket busy without unbounded buffering.
        while (peer.socket.writableLength < 256 * 1024 && !stop) {
          peer.socket.write(pre0);
          sent++;
        }
        setImmediate(fill);
        return;
      }
      while (inflight < window) {
        const id = nextId;
        nextId = nextId === 65535 ? 1 : nextId + 1;
        inflight++;
        sent++;
        peer.socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload: stamp(), qos, retain: false, dup: false, messageId: id }));
      }
    };
    if (rate > 0) {
      // Paced: every 10 ms send this publisher's share of the rate.
      const perTick = rate / nPub / 100;
      let debt = 0;
      const timer = setInterval(() => {
        if (stop) return clearInterval(timer);
        debt += perTick;
        while (debt >= 1) {
          debt -= 1;
          const id = nextId;
          nextId = nextId === 65535 ? 1 : nextId + 1;
          sent++;
          peer.socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload: stamp(), qos, retain: false, dup: false, messageId: qos > 0 ? id : undefined }));
        }
      }, 10);
    }
    peer.onPacket = (p) => {
      if (p.cmd === 'puback' || p.cmd === 'pubcomp') {
        inflight--;
        fill();
      } else if (p.cmd === 'pubrec') peer.socket.write(mqttPacket.generate({ cmd: 'pubrel', messageId: p.messageId! }));
    };
    pubs.push(peer);
    setImmediate(fill);
  }
  const start = Date.now();
  const warmup = 1000;
  let base = 0;
  await new Promise((r) => setTimeout(r, warmup));
  base = received;
  measuring = true;
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const delivered = received - base;
  const elapsed = (Date.now() - t0) / 1000;
  stop = true;
  for (const p of [...pubs, ...subs]) p.socket.destroy();
  void start;
  const throughput = Math.round(delivered / elapsed);
  latencies.sort((x, y) => x - y);
  const pct = (q: number) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 1000) : null);
  process.stdout.write(
    JSON.stringify({
      scenario: values.scenario,
      qos,
      publishers: nPub,
      subscribers: nSub,
      crossNode: subPort !== port,
      persistent: values.persistent,
      seconds: elapsed,
      delivered,
      rate: throughput,
      sent,
      p50us: pct(0.5),
      p99us: pct(0.99),
    }) + '\n',
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
