/**
 * The client side of the JIT warm-up (src/runtime/warmup.ts), run in a child process:
 * - its own V8 isolate, so the type feedback of the codec and stream functions it shares with the
 *   broker stays what the broker alone gives them (clients in the broker's isolate made that
 *   feedback polymorphic: a warmed node then drained a backlog at 120-140k msg/s, not 340-450k);
 * - its own memory, all returned when it exits (a worker thread's heap and malloc arena stayed in
 *   the broker's resident memory: about 50 MB more than without a warm-up).
 * The client is written here on the project's codec because MQTT.js is a development dependency
 * only, and the warm-up runs in production installs.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { Decoder, encode, type Packet } from '../codec/codec.js';

/** Message counts of the warm-up (see BENCHMARKS.md for how they were chosen). */
export const WARMUP_PLAN = {
  connects: 1000,
  /** Connections without CONNACK at a time while connecting. */
  outstanding: 100,
  fanInPublishers: 5,
  /** Per publisher and QoS. */
  fanInMessages: 2000,
  fanOutSubscribers: 20,
  fanOutMessages: 500,
  retained: 200,
  backlog: 10_000,
  /** In-flight QoS 1/2 messages per publisher. */
  window: 32,
} as const;

const PAYLOAD = Buffer.alloc(64, 0x61);
const EMPTY = Buffer.alloc(0);

class Stop extends Error {}

/** A client of the warm-up: raw MQTT over TCP, answering QoS 1/2 flows itself. */
class WarmClient {
  readonly socket: net.Socket;
  private readonly decoder: Decoder;
  received = 0;
  /** Unacknowledged QoS 1/2 PUBLISH this client sent. */
  inflight = 0;
  private nextId = 0;
  private waiter: { test: () => boolean; resolve: () => void } | undefined;
  private connack: ((sessionPresent: boolean) => void) | undefined;
  private suback: (() => void) | undefined;
  closed = false;

  constructor(
    port: number,
    private readonly version: 4 | 5,
    private readonly deadline: number,
  ) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.decoder = new Decoder(this, 16 * 1024 * 1024);
    this.decoder.protocolVersion = version;
    this.socket.on('data', (d: Buffer) => this.decoder.push(d));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  packet(p: Packet): void {
    switch (p.cmd) {
      case 'connack':
        this.connack?.(p.sessionPresent);
        this.connack = undefined;
        break;
      case 'suback':
        this.suback?.();
        this.suback = undefined;
        break;
      case 'publish':
        this.received++;
        if (p.qos === 1) this.send({ cmd: 'puback', messageId: p.messageId! });
        else if (p.qos === 2) this.send({ cmd: 'pubrec', messageId: p.messageId! });
        break;
      case 'pubrel':
        this.send({ cmd: 'pubcomp', messageId: p.messageId! });
        break;
      case 'pubrec':
        this.send({ cmd: 'pubrel', messageId: p.messageId! });
        break;
      case 'puback':
      case 'pubcomp':
        this.inflight--;
        break;
      default:
        break;
    }
    this.wake();
  }

  /** A two-byte PUBACK / PUBCOMP (the decoder passes only those). */
  ack(): boolean {
    this.inflight--;
    this.wake();
    return true;
  }

  error(): void {
    this.socket.destroy();
  }

  send(p: Packet): boolean {
    return this.socket.write(encode(p, this.version));
  }

  /** Resolves when `test()` holds (checked after every packet), rejects on close or deadline. */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Stop('out of time'));
      }, Math.max(0, this.deadline - Date.now()));
      this.waiter = {
        test: () => test() || this.closed,
        resolve: () => {
          clearTimeout(timer);
          if (this.closed && !test()) reject(new Stop('warm-up connection closed'));
          else resolve();
        },
      };
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (w !== undefined && w.test()) {
      this.waiter = undefined;
      w.resolve();
    }
  }

  async connect(clientId: string, clean = true): Promise<boolean> {
    let present = false;
    let done = false;
    this.connack = (sp) => {
      present = sp;
      done = true;
    };
    const p: Packet =
      this.version === 5
        ? { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean, keepalive: 60, properties: clean ? {} : { sessionExpiryInterval: 3600 } }
        : { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean, keepalive: 60 };
    this.send(p);
    await this.until(() => done);
    return present;
  }

  async subscribe(topic: string, qos: 0 | 1 | 2): Promise<void> {
    let done = false;
    this.suback = () => (done = true);
    this.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] });
    await this.until(() => done);
  }

  /** Publishes `count` messages, at most `window` unacknowledged; resolves when all are acknowledged. */
  async publish(topic: string, qos: 0 | 1 | 2, count: number, window: number, retain = false, payload: Buffer = PAYLOAD): Promise<void> {
    for (let sent = 0; sent < count; ) {
      if (qos > 0) await this.until(() => this.inflight < window);
      else if (this.socket.writableLength > 64 * 1024) await new Promise((r) => setImmediate(r));
      const messageId = (this.nextId++ % 65535) + 1;
      this.send({ cmd: 'publish', topic, qos, retain, dup: false, messageId, payload });
      if (qos > 0) this.inflight++;
      sent++;
    }
    await this.until(() => this.inflight === 0);
  }

  disconnect(): void {
    this.send({ cmd: 'disconnect' });
    this.socket.end();
  }
}

/** How many rounds of mixed traffic one pass runs: it stops after `min` once a round is no faster
 *  than the best before it by 10%, and after `max` in any case. */
export interface RoundLimits {
  min: number;
  max: number;
  /** Epoch ms: a round past `min` is not started when the last round's length from now would end
   *  after this (the time left is for the passes that follow). 0 or absent: no such limit. */
  optionalUntil?: number;
}

/** Whether round `round` (1-based) may start at `now`, the previous round having taken `lastMs`:
 *  rounds up to `min` always may; later ones only while a round as long as the last would end by
 *  `optionalUntil` (when set) and `max` is not passed. */
export function mayStartRound(round: number, limits: RoundLimits, lastMs: number | undefined, now: number): boolean {
  if (round > limits.max) return false;
  if (round <= limits.min) return true;
  return !limits.optionalUntil || now + (lastMs ?? 0) <= limits.optionalUntil;
}

export interface TrafficResult {
  /** Wall time of each round of mixed traffic, ms. */
  rounds: number[];
  /** PUBLISH packets the clients received. */
  delivered: number;
  /** Why it stopped early, if it did. */
  stoppedEarly?: string;
}

/** Drives the warm-up traffic against `port` on loopback until done or `deadline` (epoch ms). */
export async function runTraffic(port: number, deadline: number, rounds: RoundLimits): Promise<TrafficResult> {
  const times: number[] = [];
  const clients: WarmClient[] = [];
  let delivered = 0;
  let stoppedEarly: string | undefined;
  const client = (version: 4 | 5 = 4): WarmClient => {
    const c = new WarmClient(port, version, deadline);
    clients.push(c);
    return c;
  };
  const done = (cs: WarmClient[]): void => {
    for (const c of cs) {
      delivered += c.received;
      c.disconnect();
    }
  };
  try {
    const P = WARMUP_PLAN;

    // Connects (clean sessions, both versions), at most `outstanding` waiting for CONNACK.
    const batch: WarmClient[] = [];
    for (let i = 0; i < P.connects; i += P.outstanding) {
      const cs = Array.from({ length: Math.min(P.outstanding, P.connects - i) }, (_, k) => client((i + k) % 4 === 0 ? 5 : 4));
      await Promise.all(cs.map((c, k) => c.connect(`warmup-c${i + k}`)));
      batch.push(...cs);
    }
    done(batch);

    // Rounds of mixed traffic until a round is not 10% faster than the best before it (what V8
    // had to compile for it is compiled), at least `rounds.min`, at most `rounds.max`.
    const sub = client();
    await sub.connect('warmup-in');
    await sub.subscribe('warmup/in', 2);
    const pubs = Array.from({ length: P.fanInPublishers }, (_, i) => client(i === 0 ? 5 : 4));
    await Promise.all(pubs.map((p, i) => p.connect(`warmup-p${i}`)));
    const fanOut = Array.from({ length: P.fanOutSubscribers }, () => client());
    await Promise.all(fanOut.map((s, i) => s.connect(`warmup-s${i}`)));
    await Promise.all(fanOut.map((s) => s.subscribe('warmup/out', 1)));
    let backlog = client();
    await backlog.connect('warmup-backlog', false);
    await backlog.subscribe('warmup/q', 1);
    backlog.disconnect();
    await backlog.until(() => backlog.closed);
    let previous = Infinity;
    for (let round = 1; mayStartRound(round, rounds, times[times.length - 1], Date.now()); round++) {
      const t0 = performance.now();
      // Fan-in at each QoS; one publisher speaks MQTT 5.
      for (const qos of [0, 1, 2] as const) {
        const before = sub.received;
        await Promise.all(pubs.map((p) => p.publish('warmup/in', qos, P.fanInMessages, P.window)));
        // QoS 0 may be dropped under pressure (limits.maxOutputBufferBytes); 1 and 2 may not.
        if (qos > 0) await sub.until(() => sub.received - before >= P.fanInMessages * P.fanInPublishers);
      }
      // Fan-out at QoS 1.
      const expected = fanOut.map((s) => s.received + P.fanOutMessages);
      await pubs[1]!.publish('warmup/out', 1, P.fanOutMessages, P.window);
      await Promise.all(fanOut.map((s, i) => s.until(() => s.received >= expected[i]!)));
      // Retained: set, receive on a wildcard subscription, clear.
      const rp = pubs[2]!;
      /** `P.retained` retained QoS 0 messages, then one at QoS 1 whose PUBACK says all arrived;
       *  an empty payload clears them [MQTT-3.3.1-10]. */
      const setRetained = async (payload: Buffer): Promise<void> => {
        for (let i = 0; i < P.retained; i++) rp.send({ cmd: 'publish', topic: `warmup/r/${i}`, qos: 0, retain: true, dup: false, payload });
        await rp.publish('warmup/r/last', 1, 1, 1, true, payload);
      };
      await setRetained(PAYLOAD);
      const rsub = client();
      await rsub.connect('warmup-r');
      await rsub.subscribe('warmup/r/#', 1);
      await rsub.until(() => rsub.received >= P.retained + 1);
      await setRetained(EMPTY);
      done([rsub]);
      // A persistent session's backlog, queued while it is away and drained on reconnect.
      await pubs[3]!.publish('warmup/q', 1, P.backlog, P.window);
      backlog = client();
      if (!(await backlog.connect('warmup-backlog', false))) throw new Stop('backlog session not present');
      const b = backlog;
      await b.until(() => b.received >= P.backlog);
      done([b]);
      await b.until(() => b.closed);
      const ms = performance.now() - t0;
      times.push(Math.round(ms));
      if (round >= rounds.min && ms > 0.9 * previous) break;
      previous = Math.min(previous, ms);
    }
    // The session goes with a clean connect.
    const end = client();
    await end.connect('warmup-backlog', true);
    done([end, sub, ...pubs, ...fanOut]);
  } catch (err) {
    stoppedEarly = err instanceof Error ? err.message : String(err);
  } finally {
    for (const c of clients) c.destroy();
  }
  const r: TrafficResult = { rounds: times, delivered };
  if (stoppedEarly !== undefined) r.stoppedEarly = stoppedEarly;
  return r;
}

// Child process entry (see warmup.ts): argv port, deadline, min and max rounds, optionalUntil (0:
// none); the result goes back over the IPC channel. The child ends with its parent.
if (process.send !== undefined && process.env.SKEIN_WARMUP_CHILD === '1') {
  const [port, deadline, min, max, optionalUntil] = process.argv.slice(2).map(Number) as [number, number, number, number, number];
  process.on('disconnect', () => process.exit(0));
  void runTraffic(port, deadline, { min, max, optionalUntil }).then((r) => process.send!(r, () => process.exit(0)));
}
