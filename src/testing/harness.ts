/**
 * Test helpers shared by the black-box tests: an in-process broker on a random loopback port and
 * a raw MQTT client that speaks packets over a real TCP socket (for conformance tests that must
 * send exactly what the spec describes, including malformed input).
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { Writable } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { defaultConfig, type SkeinConfig } from '../config/schema.js';
import { createLogger } from '../log.js';
import { startNode, type NodeExtras, type SkeinNode } from '../node.js';

export interface TestBroker {
  node: SkeinNode;
  port: number;
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** Starts a broker on 127.0.0.1:0. Default store: memory; pass `store: { type: 'embedded' }` for disk. */
export async function startTestBroker(overrides: DeepPartial<SkeinConfig> = {}, extras: NodeExtras = {}): Promise<TestBroker> {
  const config = defaultConfig();
  const dataDir = overrides.dataDir ?? mkdtempSync(join(tmpdir(), 'skein-test-'));
  config.dataDir = dataDir;
  config.nodeId = 'test';
  config.listeners = [{ port: 0, host: '127.0.0.1', protocol: 'mqtt' }];
  config.store.type = 'memory';
  config.sys.intervalMs = 0;
  config.logLevel = (process.env.SKEIN_TEST_LOG as SkeinConfig['logLevel']) ?? 'silent';
  for (const k of ['store', 'limits', 'mqtt', 'sys'] as const) Object.assign(config[k], overrides[k] ?? {});
  if (overrides.nodeId) config.nodeId = overrides.nodeId;
  const node = await startNode(config, { logger: createLogger(config.logLevel), ...extras });
  const port = node.addresses[0]!.port;
  return {
    node,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dataDir,
    async stop() {
      await node.stop();
      if (!overrides.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A raw MQTT client over TCP: send packets (or bytes), await decoded packets or the close. */
export class RawClient {
  private readonly received: Packet[] = [];
  private waiters: Array<() => void> = [];
  private parser: ReturnType<typeof mqttPacket.parser>;
  closed = false;
  readonly closedPromise: Promise<void>;
  parseErrors: string[] = [];

  private constructor(private readonly socket: net.Socket, public version: 3 | 4 | 5) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on('packet', (p: Packet) => {
      this.received.push(p);
      this.wake();
    });
    this.parser.on('error', (e: Error) => this.parseErrors.push(e.message));
    socket.on('data', (d) => this.parser.parse(d));
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number, version: 3 | 4 | 5 = 4): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket, version);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.version }));
  }

  sendBytes(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.from(bytes as Buffer));
  }

  /** Sends CONNECT and returns the CONNACK. */
  async handshake(connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnackPacket> {
    this.send({
      cmd: 'connect',
      protocolId: this.version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.version,
      clientId: 'raw-' + Math.random().toString(36).slice(2, 10),
      clean: true,
      keepalive: 60,
      ...connect,
    } as mqttPacket.IConnectPacket);
    return (await this.next('connack')) as mqttPacket.IConnackPacket;
  }

  /** Next received packet (optionally of a given type, skipping none: a different type fails). */
  async next(cmd?: Packet['cmd'], timeoutMs = 3000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.received.shift();
      if (p) {
        if (cmd && p.cmd !== cmd) throw new Error(`expected ${cmd}, got ${p.cmd}: ${JSON.stringify(p)}`);
        return p;
      }
      if (this.closed) throw new Error(`connection closed while waiting for ${cmd ?? 'a packet'}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${cmd ?? 'a packet'}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Resolves true if no packet arrives within `ms`. */
  async nothingWithin(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.received.length === 0;
  }

  /** Waits for the server to close the connection; returns packets received before the close. */
  async expectClose(timeoutMs = 3000): Promise<Packet[]> {
    await Promise.race([
      this.closedPromise,
      new Promise((_, reject) => setTimeout(() => reject(new Error('connection not closed')), timeoutMs)),
    ]);
    return this.received.splice(0);
  }

  pending(): Packet[] {
    return this.received.splice(0);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** One structured log line as pino writes it. */
export interface LogLine {
  level: number;
  msg: string;
  err?: { message?: string; stack?: string };
}

/** A stream for `createLogger(level, { destination })` that collects the JSON lines it gets. */
export function captureLogs(): { sink: Writable; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        try {
          lines.push(JSON.parse(line) as LogLine);
        } catch {
          lines.push({ level: 60, msg: `unparseable log line: ${line}` });
        }
      }
      cb();
    },
  });
  return { sink, lines };
}
