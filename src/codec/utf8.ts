/**
 * Strict reading of UTF-8 Encoded Strings, shared by the hand-written fast path (fast-decode.ts)
 * and the string reader installed into mqtt-packet's parser (codec.ts), so both refuse exactly
 * the same strings with the same messages.
 *
 * A UTF-8 Encoded String MUST be well-formed UTF-8 (no surrogates, no overlong forms)
 * [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]) and MUST NOT contain U+0000 [MQTT-1.5.4-2] (3.1.1:
 * [MQTT-1.5.3-2]). A leading U+FEFF is part of the string and MUST NOT be stripped
 * [MQTT-1.5.4-3] (3.1.1: [MQTT-1.5.3-3]).
 */

// ignoreBOM: keep a leading U+FEFF [MQTT-1.5.4-3].
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export const MALFORMED_UTF8 = 'Malformed UTF-8 string';
export const UTF8_NUL = 'UTF-8 string contains U+0000';

/** Buffer's native latin1 slice (undocumented but stable since Node 0.x; not in @types/node). */
type Latin1 = { latin1Slice(start: number, end: number): string };

/**
 * Decodes bytes [start, end) of `buf` as a strict UTF-8 Encoded String; undefined when they are
 * not one (call `utf8Problem` for the reason). ASCII, the common case for topics, is checked by a
 * byte loop and sliced natively without going through TextDecoder.
 */
export function readUtf8(buf: Buffer, start: number, end: number): string | undefined {
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === 0) return undefined; // U+0000 [MQTT-1.5.4-2]
    if (c > 0x7f) return readUtf8NonAscii(buf, start, end);
  }
  return (buf as unknown as Latin1).latin1Slice(start, end);
}

function readUtf8NonAscii(buf: Buffer, start: number, end: number): string | undefined {
  let s: string;
  try {
    s = strictUtf8.decode(buf.subarray(start, end));
  } catch {
    return undefined; // ill-formed [MQTT-1.5.4-1]
  }
  return s.includes('\u0000') ? undefined : s;
}

/** Why `readUtf8` refused bytes [start, end): the message mqtt-packet's strict reader reports. */
export function utf8Problem(buf: Buffer, start: number, end: number): string {
  try {
    strictUtf8.decode(buf.subarray(start, end));
  } catch {
    return MALFORMED_UTF8;
  }
  return UTF8_NUL;
}
