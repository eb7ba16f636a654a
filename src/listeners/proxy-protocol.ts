/**
 * PROXY protocol v1 (text) and v2 (binary) header parser, by hand and pure
 * (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt). A load balancer in front of the
 * broker (HAProxy `send-proxy[-v2]`, nginx `proxy_protocol on`) sends one header before the
 * client's bytes; it carries the real client address.
 *
 * Bounded: a v1 header is at most 107 bytes (CRLF included), a v2 header at most 536 bytes
 * (16-byte fixed part + 520 of addresses and TLVs); anything longer is invalid. The caller bounds
 * the time a peer has to send it (`PROXY_HEADER_TIMEOUT_MS`).
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';

export const V1_MAX_LENGTH = 107;
export const V2_MAX_LENGTH = 536;
export const PROXY_HEADER_TIMEOUT_MS = 3000;

/** The 12-byte signature a v2 header starts with. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

export interface ProxyAddress {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** `LOCAL` (v2 only): the proxy's own connection (e.g. a health check): use the socket's addresses. */
  command: 'PROXY' | 'LOCAL';
  /** v1: TCP4 | TCP6 | UNKNOWN; v2: TCP4 | TCP6 | UDP4 | UDP6 | UNIX | UNSPEC. */
  protocol: string;
  /** The client's address, when the header carries an IP one. */
  source?: ProxyAddress;
  destination?: ProxyAddress;
}

export type ProxyParseResult =
  | { kind: 'incomplete' }
  | { kind: 'invalid'; reason: string }
  | { kind: 'header'; header: ProxyHeader; /** bytes the header took; the client's bytes follow */ length: number };

const INCOMPLETE: ProxyParseResult = { kind: 'incomplete' };
const invalid = (reason: string): ProxyParseResult => ({ kind: 'invalid', reason });

/** True when `buf` (the first bytes of a stream) can only be the start of a PROXY header. */
export function looksLikeProxyHeader(buf: Buffer): boolean {
  if (buf.length === 0) return false;
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  if (buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return true;
  const m = Math.min(buf.length, V1_PREFIX.length);
  return buf.subarray(0, m).equals(V1_PREFIX.subarray(0, m));
}

/** Parses a PROXY header at the start of `buf` (v1 or v2, told apart by the first bytes). */
export function parseProxyHeader(buf: Buffer): ProxyParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === 0x0d) return parseV2(buf);
  if (buf[0] === 0x50 /* P */) return parseV1(buf);
  return invalid('not a PROXY protocol header');
}

function parseV1(buf: Buffer): ProxyParseResult {
  const m = Math.min(buf.length, V1_PREFIX.length);
  if (!buf.subarray(0, m).equals(V1_PREFIX.subarray(0, m))) return invalid('not a PROXY protocol header');
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = 0; i < limit - 1; i++) {
    if (buf[i] === 0x0d && buf[i + 1] === 0x0a) {
      end = i;
      break;
    }
  }
  if (end < 0) {
    if (buf.length >= V1_MAX_LENGTH) return invalid(`v1 header longer than ${V1_MAX_LENGTH} bytes`);
    // A lone LF or any control byte cannot appear in a v1 line.
    for (let i = 0; i < limit; i++) {
      const c = buf[i]!;
      if ((c < 0x20 && c !== 0x0d) || c > 0x7e) return invalid('v1 header contains a non-printable byte');
    }
    return INCOMPLETE;
  }
  const line = buf.toString('latin1', 0, end);
  if (/[^\x20-\x7e]/.test(line)) return invalid('v1 header contains a non-printable byte');
  const parts = line.split(' ');
  const length = end + 2;
  const protocol = parts[1];
  if (protocol === 'UNKNOWN') return { kind: 'header', length, header: { version: 1, command: 'PROXY', protocol } };
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return invalid(`v1 header: unknown protocol ${JSON.stringify(protocol ?? '')}`);
  if (parts.length !== 6) return invalid('v1 header: expected "PROXY TCP4|TCP6 src dst sport dport"');
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const isIp = protocol === 'TCP4' ? net.isIPv4 : net.isIPv6;
  if (!isIp(src) || !isIp(dst)) return invalid(`v1 header: bad ${protocol} address`);
  const sp = parsePort(sport);
  const dp = parsePort(dport);
  if (sp === undefined || dp === undefined) return invalid('v1 header: bad port');
  return {
    kind: 'header',
    length,
    header: { version: 1, command: 'PROXY', protocol, source: { address: src, port: sp }, destination: { address: dst, port: dp } },
  };
}

function parsePort(s: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

const V2_FAMILIES: Record<number, string> = {
  0x00: 'UNSPEC',
  0x11: 'TCP4',
  0x12: 'UDP4',
  0x21: 'TCP6',
  0x22: 'UDP6',
  0x31: 'UNIX',
  0x32: 'UNIX',
};

function parseV2(buf: Buffer): ProxyParseResult {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return invalid('not a PROXY protocol header');
  if (buf.length < 16) return INCOMPLETE;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid(`v2 header: version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return invalid(`v2 header: unknown command ${cmd}`);
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  const length = 16 + len;
  if (length > V2_MAX_LENGTH) return invalid(`v2 header longer than ${V2_MAX_LENGTH} bytes`);
  if (buf.length < length) return INCOMPLETE;
  const protocol = V2_FAMILIES[fam];
  if (protocol === undefined) return invalid(`v2 header: unknown address family 0x${fam.toString(16)}`);
  if (cmd === 0) return { kind: 'header', length, header: { version: 2, command: 'LOCAL', protocol } };
  const body = buf.subarray(16, length);
  // Address block: source address, destination address, source port, destination port.
  const ip = protocol === 'TCP4' || protocol === 'UDP4' ? { size: 4, read: ipv4, name: 'IPv4' } : protocol === 'TCP6' || protocol === 'UDP6' ? { size: 16, read: ipv6, name: 'IPv6' } : undefined;
  if (ip) {
    const ports = 2 * ip.size;
    if (body.length < ports + 4) return invalid(`v2 header: ${ip.name} address block too short`);
    return {
      kind: 'header',
      length,
      header: {
        version: 2,
        command: 'PROXY',
        protocol,
        source: { address: ip.read(body, 0), port: body.readUInt16BE(ports) },
        destination: { address: ip.read(body, ip.size), port: body.readUInt16BE(ports + 2) },
      },
    };
  }
  // UNSPEC / UNIX with PROXY: no IP address to use; the receiver keeps the socket's.
  return { kind: 'header', length, header: { version: 2, command: 'PROXY', protocol } };
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(at + i * 2).toString(16));
  // The URL parser writes IPv6 in its canonical (RFC 5952) compressed form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

// ---------------------------------------------------------------------------------------------
// Trusted proxies

/** Strips the IPv4-mapped IPv6 prefix (`::ffff:10.0.0.1` → `10.0.0.1`). */
export function normalizeAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/** Checks a comma list of addresses and CIDRs; returns the problems (for config validation). */
export function trustedProxiesProblem(list: string): string | undefined {
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const [addr, bits, extra] = entry.split('/');
    const family = net.isIPv4(addr!) ? 4 : net.isIPv6(addr!) ? 6 : 0;
    if (family === 0 || extra !== undefined) return `"${entry}" is not an address or CIDR`;
    if (bits !== undefined) {
      const max = family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `"${entry}": prefix length must be 0-${max}`;
    }
  }
  return undefined;
}

/**
 * A matcher for a comma list of addresses and CIDRs (`127.0.0.1,10.0.0.0/8,::1`). An empty list
 * matches every peer (every connection must then start with a PROXY header).
 */
export function trustMatcher(list: string): (address: string) => boolean {
  const entries = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 0) return () => true;
  const block = new net.BlockList();
  for (const entry of entries) {
    const [addr, bits] = entry.split('/') as [string, string | undefined];
    const type = net.isIPv4(addr) ? 'ipv4' : 'ipv6';
    if (bits === undefined) block.addAddress(addr, type);
    else block.addSubnet(addr, Number(bits), type);
  }
  return (address) => {
    const a = normalizeAddress(address);
    if (net.isIPv4(a)) return block.check(a, 'ipv4');
    if (net.isIPv6(a)) return block.check(a, 'ipv6');
    return false;
  };
}
