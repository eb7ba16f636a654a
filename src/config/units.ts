/**
 * Unit parsing and formatting for configuration values.
 *
 * Byte sizes: a number is a count of bytes; a string is a decimal number followed by an optional
 * unit, case-insensitive: `B`, `KB` (1000), `KiB` (1024), `MB`, `MiB`, `GB`, `GiB`, `TB`, `TiB`.
 * A string without unit is bytes. The result must be a whole number of bytes.
 *
 * Durations: a number is in the key's base unit (always seconds for configuration keys); a string
 * is one or more `<decimal><unit>` parts with units `ms`, `s`, `m`, `h`, `d` (e.g. `500ms`, `10s`,
 * `1h30m`, `14d`); a string that is only a number is in the base unit. The result must be a whole
 * number of milliseconds.
 *
 * All arithmetic is exact (decimal fractions are scaled with BigInt), so `"1.1MB"` is 1100000 and
 * `"0.1KiB"` is rejected instead of silently becoming 102.
 */

export const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  kib: 2 ** 10,
  mb: 1e6,
  mib: 2 ** 20,
  gb: 1e9,
  gib: 2 ** 30,
  tb: 1e12,
  tib: 2 ** 40,
};

export const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Result of parsing: a value, or why the input is not one. */
export type UnitResult =
  | { ok: true; value: number }
  | { ok: false; reason: 'syntax' | 'fraction' };

const DECIMAL = /^(\d+(?:\.\d*)?|\.\d+)$/;

/** Splits a non-negative decimal string into an exact numerator and power-of-ten denominator. */
function decimal(text: string): { num: bigint; den: bigint } | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const [int, frac = ''] = text.split('.');
  return { num: BigInt((int || '0') + frac), den: 10n ** BigInt(frac.length) };
}

/** Exact `text * factor` when the product is a whole number. */
function scale(text: string, factor: number): UnitResult {
  const d = decimal(text);
  if (!d) return { ok: false, reason: 'syntax' };
  const product = d.num * BigInt(factor);
  if (product % d.den !== 0n) return { ok: false, reason: 'fraction' };
  return { ok: true, value: Number(product / d.den) };
}

/** A finite number as a plain decimal string, or undefined for exponent forms like 1e-7. */
function numberText(n: number): string | undefined {
  const s = String(Math.abs(n));
  return /e/i.test(s) ? undefined : s;
}

/** Parses a byte size. Numbers (including negative ones, left for range checks) are bytes. */
export function parseBytes(input: unknown): UnitResult {
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, reason: 'syntax' };
    return Number.isInteger(input) ? { ok: true, value: input } : { ok: false, reason: 'fraction' };
  }
  if (typeof input !== 'string') return { ok: false, reason: 'syntax' };
  const m = /^\s*([\d.]+)\s*([a-z]*)\s*$/i.exec(input);
  if (!m) return { ok: false, reason: 'syntax' };
  const unit = m[2]!.toLowerCase();
  const factor = unit === '' ? 1 : BYTE_UNITS[unit];
  if (factor === undefined) return { ok: false, reason: 'syntax' };
  return scale(m[1]!, factor);
}

/**
 * Parses a duration into milliseconds. `baseUnitMs` is what a bare number means (1000 when the
 * key's base unit is seconds).
 */
export function parseDurationMs(input: unknown, baseUnitMs: number): UnitResult {
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, reason: 'syntax' };
    const text = numberText(input);
    let r: UnitResult;
    if (text === undefined) {
      const v = Math.abs(input) * baseUnitMs;
      r = Number.isInteger(v) ? { ok: true, value: v } : { ok: false, reason: 'fraction' };
    } else {
      r = scale(text, baseUnitMs);
    }
    return r.ok && input < 0 ? { ok: true, value: -r.value } : r;
  }
  if (typeof input !== 'string') return { ok: false, reason: 'syntax' };
  const text = input.trim();
  if (text === '') return { ok: false, reason: 'syntax' };
  if (DECIMAL.test(text)) return scale(text, baseUnitMs);
  const part = /([\d.]+)\s*(ms|s|m|h|d)\s*/giy;
  let total = 0;
  let end = 0;
  let fraction = false;
  for (let m = part.exec(text); m !== null; m = part.exec(text)) {
    const r = scale(m[1]!, DURATION_UNITS_MS[m[2]!.toLowerCase()]!);
    if (!r.ok) {
      if (r.reason === 'syntax') return r;
      fraction = true;
    } else {
      total += r.value;
    }
    end = part.lastIndex;
  }
  if (end !== text.length) return { ok: false, reason: 'syntax' };
  return fraction ? { ok: false, reason: 'fraction' } : { ok: true, value: total };
}

/** `1048576` → `"1MiB"`, `1500` → `"1500B"`; the largest unit that divides exactly. */
export function formatBytes(n: number): string {
  if (n !== 0 && Number.isInteger(n)) {
    for (const u of ['TiB', 'GiB', 'MiB', 'KiB', 'TB', 'GB', 'MB', 'KB'] as const) {
      const f = BYTE_UNITS[u.toLowerCase()]!;
      if (n % f === 0) return `${n / f}${u}`;
    }
  }
  return `${n}B`;
}

/** `10000` → `"10s"`, `90000` → `"90s"`, `0` → `"0s"`; the largest unit that divides exactly. */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return '0s';
  for (const u of ['d', 'h', 'm', 's'] as const) {
    const f = DURATION_UNITS_MS[u]!;
    if (ms % f === 0) return `${ms / f}${u}`;
  }
  return `${ms}ms`;
}
