/**
 * Deep copy for store records. The store never keeps a caller's object and never hands out its
 * own, so every value crossing the `Store` boundary goes through here.
 *
 * - Buffers (and other Uint8Arrays) are copied byte for byte into new Buffers.
 * - Keys whose value is `undefined` are dropped, so `{ nodeId: undefined }` and `{}` are stored the
 *   same way. Durable backends serialize records (JSON has no `undefined`), and dropping the keys
 *   here keeps every backend returning identical objects.
 */
export function deepCopy<T>(value: T): T {
  return copy(value) as T;
}

function copy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(copy);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) out[key] = copy(item);
  }
  return out;
}
