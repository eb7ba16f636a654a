/**
 * Shared steps of the conformance tests: a broker per test, raw clients that are closed when the
 * test ends, and the few multi-packet steps (connect, subscribe, publish) written once.
 */
import { Buffer } from 'node:buffer';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { IConnackPacket, IConnectPacket, IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import { RawClient, startTestBroker, type TestBroker } from '../testing/harness.js';
import type { NodeExtras } from '../node.js';

export type Version = 4 | 5;
type Overrides = Parameters<typeof startTestBroker>[0];

export async function broker(t: TestContext, overrides: Overrides = {}, extras: NodeExtras = {}): Promise<TestBroker> {
  const b = await startTestBroker(overrides, extras);
  t.after(() => b.stop());
  return b;
}

/** A raw TCP client, destroyed when the test ends. */
export async function raw(t: TestContext, b: TestBroker, version: 3 | 4 | 5 = 4): Promise<RawClient> {
  const c = await RawClient.connect(b.port, version);
  t.after(() => c.destroy());
  return c;
}

let counter = 0;
export function uid(prefix = 'c'): string {
  return `${prefix}${process.pid}x${++counter}`;
}

/** Connects and asserts a successful CONNACK. */
export async function connect(
  t: TestContext,
  b: TestBroker,
  version: 3 | 4 | 5,
  opts: Partial<IConnectPacket> = {},
): Promise<{ c: RawClient; connack: IConnackPacket }> {
  const c = await raw(t, b, version);
  const connack = await c.handshake(opts);
  assert.equal(version === 5 ? connack.reasonCode : connack.returnCode, 0, `CONNACK ${JSON.stringify(connack)}`);
  return { c, connack };
}

export async function client(t: TestContext, b: TestBroker, version: 3 | 4 | 5, opts: Partial<IConnectPacket> = {}): Promise<RawClient> {
  return (await connect(t, b, version, opts)).c;
}

let pid = 0;
export function nextId(): number {
  pid = (pid % 60000) + 1;
  return pid;
}

export interface SubOpts {
  nl?: boolean;
  rap?: boolean;
  rh?: number;
  subscriptionIdentifier?: number;
}

/** SUBSCRIBE one filter and return the SUBACK. */
export async function subscribe(c: RawClient, topic: string, qos: 0 | 1 | 2 = 0, o: SubOpts = {}): Promise<ISubackPacket> {
  const messageId = nextId();
  const sub: { topic: string; qos: 0 | 1 | 2; nl?: boolean; rap?: boolean; rh?: number } = { topic, qos };
  if (c.version === 5) {
    sub.nl = o.nl ?? false;
    sub.rap = o.rap ?? false;
    sub.rh = o.rh ?? 0;
  }
  c.send({
    cmd: 'subscribe',
    messageId,
    subscriptions: [sub],
    properties: o.subscriptionIdentifier !== undefined ? { subscriptionIdentifier: o.subscriptionIdentifier } : undefined,
  } as Packet);
  const ack = (await c.next('suback')) as ISubackPacket;
  assert.equal(ack.messageId, messageId);
  return ack;
}

/** PUBLISH and, for QoS 1/2, complete the flow as the publisher. */
export async function publish(
  c: RawClient,
  topic: string,
  payload: string | Buffer,
  qos: 0 | 1 | 2 = 0,
  extra: Partial<IPublishPacket> = {},
): Promise<void> {
  const messageId = qos > 0 ? nextId() : undefined;
  c.send({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, messageId, ...extra } as IPublishPacket);
  if (qos === 1) {
    const ack = await c.next('puback');
    assert.equal(ack.messageId, messageId);
  } else if (qos === 2) {
    const rec = await c.next('pubrec');
    assert.equal(rec.messageId, messageId);
    c.send({ cmd: 'pubrel', messageId });
    const comp = await c.next('pubcomp');
    assert.equal(comp.messageId, messageId);
  }
}

/** Next PUBLISH received; acknowledges it when `ack` (QoS 1: PUBACK, QoS 2: PUBREC/PUBREL/PUBCOMP). */
export async function receive(c: RawClient, ack = true, timeoutMs = 3000): Promise<IPublishPacket> {
  const p = (await c.next('publish', timeoutMs)) as IPublishPacket;
  if (ack && p.qos === 1) c.send({ cmd: 'puback', messageId: p.messageId });
  if (ack && p.qos === 2) {
    c.send({ cmd: 'pubrec', messageId: p.messageId });
    const rel = await c.next('pubrel');
    assert.equal(rel.messageId, p.messageId);
    c.send({ cmd: 'pubcomp', messageId: p.messageId });
  }
  return p;
}

/** Sends PINGREQ and waits for PINGRESP: every packet sent before has been processed. */
export async function sync(c: RawClient): Promise<void> {
  c.send({ cmd: 'pingreq' });
  await c.next('pingresp');
}

/** Waits for the close and returns the DISCONNECT (if any) among the last packets. */
export async function closedWith(c: RawClient, timeoutMs = 3000): Promise<Packet | undefined> {
  const rest = await c.expectClose(timeoutMs);
  return rest.find((p) => p.cmd === 'disconnect');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function text(p: IPublishPacket): string {
  return Buffer.from(p.payload as Buffer).toString();
}

/** A CONNECT packet encoded by hand, for flag combinations a codec would refuse to produce. */
export function connectBytes(opts: { name?: string; level?: number; flags: number; keepalive?: number; clientId?: string; rest?: Buffer; v5Props?: boolean }): Buffer {
  const name = Buffer.from(opts.name ?? 'MQTT');
  const cid = Buffer.from(opts.clientId ?? 'x');
  const parts = [
    Buffer.from([0, name.length]),
    name,
    Buffer.from([opts.level ?? 4, opts.flags, 0, opts.keepalive ?? 60]),
    opts.v5Props ? Buffer.from([0]) : Buffer.alloc(0),
    Buffer.from([0, cid.length]),
    cid,
    opts.rest ?? Buffer.alloc(0),
  ];
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}
