/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the checksum of every log and snapshot
 * record.
 *
 * Why our own: `zlib.crc32` only exists from Node 20.15 / 22.2, and Skein supports every Node 20
 * (`engines: >=20`). When the runtime has it we use it (same algorithm, native speed); otherwise
 * this table-driven version, one table lookup per byte, which is fast enough for a log written in
 * large batches. Both give identical results (the tests check the standard vectors).
 */
import zlib from 'node:zlib';

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Table-driven CRC-32 (exported for tests). */
export function crc32Table(data: Uint8Array, initial = 0): number {
  let crc = ~initial >>> 0;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

export const crc32: (data: Uint8Array) => number = native ? (data) => native(data) >>> 0 : (data) => crc32Table(data);
