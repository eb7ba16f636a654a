/**
 * Loads the configuration: defaults < file (YAML or JSON) < environment (`SKEIN_*`) < CLI flags,
 * then validates everything against `CONFIG_SCHEMA` and reports every problem at once.
 *
 * Layers are merged in *file form* (the user-facing keys, values as written), and validated once
 * at the end, so each problem is reported with the place the offending value came from.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import {
  CONFIG_SCHEMA,
  defaultConfig,
  fieldName,
  type ArraySpec,
  type BytesSpec,
  type DurationSpec,
  type FieldSpec,
  type LeafSpec,
  type ObjectSpec,
  type SkeinConfig,
} from './schema.js';
import { formatBytes, formatDurationMs, parseBytes, parseDurationMs } from './units.js';
import { looksLikeMosquittoConf, parseMosquittoConf } from './mosquitto-conf.js';

/** Overrides from the command line. `port`/`host` apply to the FIRST listener. */
export interface ConfigFlags {
  port?: number | string;
  host?: string;
  dataDir?: string;
  logLevel?: string;
  nodeId?: string;
  redis?: string;
  sentinels?: string;
  sentinelName?: string;
  healthPort?: string;
}

export interface LoadConfigOptions {
  /** Config file (`.yaml`, `.yml` or `.json`, or a Mosquitto `.conf`: src/config/mosquitto-conf.ts).
   *  Default: `env.SKEIN_CONFIG` when set, else none. */
  file?: string;
  /** Receives one line per ignored or approximated option of a Mosquitto file. Default: stderr. */
  onWarning?: (line: string) => void;
  /** Environment to read `SKEIN_*` overrides from. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  flags?: ConfigFlags;
}

/** One problem. `key` is the config key path (`limits.maxPacketSize`, `listeners[0].port`), the
 *  environment variable name for an unknown `SKEIN_*` variable, or `''` for a file-level problem. */
export interface ConfigIssue {
  key: string;
  /** What is wrong, e.g. `must be between 20 and 268435455 bytes`. */
  problem: string;
  /** Where the value came from, e.g. `skein.yaml:12`, `env SKEIN_LOG_LEVEL`, `flag --port`. */
  source?: string;
  /** The full line: `config: <key>: <problem>, got <value> (<source>)`. */
  message: string;
}

export class ConfigError extends Error {
  /** Key of the first issue (see `ConfigIssue.key`). */
  readonly key: string;
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map((i) => i.message).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
    this.key = issues[0]?.key ?? '';
  }
}

/** Prefix of environment overrides. */
export const ENV_PREFIX = 'SKEIN_';
/** `SKEIN_*` variables that are not configuration keys. */
export const RESERVED_ENV: ReadonlySet<string> = new Set(['SKEIN_CONFIG', 'SKEIN_TEST_LOG', 'SKEIN_FUZZ_SEED', 'SKEIN_FUZZ_SCALE']);

const FLAG_PATHS: Record<keyof ConfigFlags, { path: Seg[]; flag: string }> = {
  port: { path: ['listeners', 0, 'port'], flag: '--port' },
  host: { path: ['listeners', 0, 'host'], flag: '--host' },
  dataDir: { path: ['dataDir'], flag: '--data-dir' },
  logLevel: { path: ['logLevel'], flag: '--log-level' },
  nodeId: { path: ['nodeId'], flag: '--node-id' },
  redis: { path: ['cluster', 'redis'], flag: '--redis' },
  sentinels: { path: ['cluster', 'sentinels'], flag: '--sentinels' },
  sentinelName: { path: ['cluster', 'sentinelName'], flag: '--sentinel-name' },
  healthPort: { path: ['health', 'port'], flag: '--health-port' },
};

type Seg = string | number;
type Raw = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Public entry points

export function loadConfig(opts: LoadConfigOptions = {}): SkeinConfig {
  const env = opts.env ?? process.env;
  const ctx = new Context();
  let raw: Raw = {};

  const file = opts.file ?? (env.SKEIN_CONFIG ? env.SKEIN_CONFIG : undefined);
  if (file !== undefined) {
    const onWarning = opts.onWarning ?? ((line: string) => void process.stderr.write(`skein: ${line}\n`));
    raw = readConfigFile(file, ctx, onWarning) ?? {};
  }
  applyEnv(raw, env, ctx);
  if (opts.flags) applyFlags(raw, opts.flags, ctx);

  const config = validateRoot(raw, ctx);
  if (ctx.issues.length > 0) throw new ConfigError(ctx.issues);
  return config;
}

/**
 * Validates a configuration given in file form (user-facing keys, values with units, missing keys
 * take defaults) — handy in tests: `configFromObject({ limits: { maxInflight: 2 } })`.
 * Throws `ConfigError`.
 */
export function configFromObject(raw: unknown, origin?: string): SkeinConfig {
  const ctx = new Context();
  if (origin !== undefined) ctx.sources.set('', origin);
  const config = validateRoot(raw ?? {}, ctx);
  if (ctx.issues.length > 0) throw new ConfigError(ctx.issues);
  return config;
}

/** The file form of a configuration (durations as `"10s"`, sizes as `"1MiB"` when exact);
 *  `configFromObject(configToObject(c))` deep-equals `c`. */
export function configToObject(config: SkeinConfig): Record<string, unknown> {
  return toFileForm(CONFIG_SCHEMA, config) as Raw;
}

/** `['limits', 'maxPacketSize']` → `SKEIN_LIMITS__MAX_PACKET_SIZE`. */
export function envNameFor(path: readonly Seg[]): string {
  return ENV_PREFIX + path.map((s) => (typeof s === 'number' ? String(s) : upperSnake(s))).join('__');
}

// ---------------------------------------------------------------------------------------------
// Issues and where values came from

class Context {
  readonly issues: ConfigIssue[] = [];
  /** Path string → description of the layer that set it (nearest ancestor applies). */
  readonly sources = new Map<string, string>();

  sourceOf(path: string): string | undefined {
    for (let p: string | undefined = path; p !== undefined; p = parentPath(p)) {
      const s = this.sources.get(p);
      if (s !== undefined) return s;
    }
    return undefined;
  }

  /** Records that `path` (and everything under it) now comes from `source`. */
  setSource(path: string, source: string): void {
    for (const k of [...this.sources.keys()]) {
      if (k.startsWith(path + '.') || k.startsWith(path + '[')) this.sources.delete(k);
    }
    this.sources.set(path, source);
  }

  add(key: string, problem: string, extra: { got?: unknown; source?: string } = {}): void {
    const source = extra.source ?? (key === '' ? undefined : this.sourceOf(key));
    let message = `config: ${key === '' ? '' : key + ': '}${problem}`;
    if ('got' in extra) message += `, got ${show(extra.got)}`;
    if (source !== undefined) message += ` (${source})`;
    this.issues.push({ key, problem, ...(source !== undefined ? { source } : {}), message });
  }
}

function parentPath(p: string): string | undefined {
  if (p === '') return undefined;
  const i = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
  return i <= 0 ? '' : p.slice(0, i);
}

function pathString(path: readonly Seg[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s;
}

function show(v: unknown): string {
  let s: string;
  if (v === undefined) s = 'nothing';
  else if (typeof v === 'string') s = JSON.stringify(v);
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

// ---------------------------------------------------------------------------------------------
// File layer

function readConfigFile(file: string, ctx: Context, onWarning: (line: string) => void): Raw | undefined {
  const ext = extname(file).toLowerCase();
  const known = ext === '.yaml' || ext === '.yml' || ext === '.json';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    ctx.add('', `cannot read config file "${file}": ${(err as Error).message}`);
    return undefined;
  }
  if (ext === '.conf' || (!known && looksLikeMosquittoConf(text))) return readMosquittoConf(file, text, ctx, onWarning);
  if (!known) {
    ctx.add('', `config file "${file}" has unsupported extension "${ext}" (use .yaml, .yml, .json or a Mosquitto .conf)`);
    return undefined;
  }
  const value = ext === '.json' ? parseJsonFile(file, text, ctx) : parseYamlFile(file, text, ctx);
  if (value === undefined) return undefined;
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    ctx.add('', `${file}: the top level must be a mapping of keys, got ${show(value)}`);
    return undefined;
  }
  ctx.setSource('', file);
  recordLocations(file, text, ctx);
  return value as Raw;
}

const MAX_PARSE_ERRORS = 5;

/** A Mosquitto configuration, mapped onto Skein's keys (src/config/mosquitto-conf.ts). */
function readMosquittoConf(file: string, text: string, ctx: Context, onWarning: (line: string) => void): Raw | undefined {
  const r = parseMosquittoConf(text, file);
  for (const w of r.warnings) onWarning(w);
  if (!Object.hasOwn(CONFIG_SCHEMA.fields, 'auth') && isPlainObject(r.raw.auth)) {
    // This build has no `auth` section yet: say so instead of failing on unknown keys.
    for (const k of Object.keys(r.raw.auth)) {
      if (k === 'allowAnonymous' && r.raw.auth[k] === true) continue;
      onWarning(`${r.sources.get(`auth.${k}`) ?? file}: warning: auth.${k} is not supported by this build; ignored`);
    }
    delete r.raw.auth;
  }
  for (const e of r.errors) ctx.add('', e);
  if (r.errors.length > 0) return undefined;
  ctx.setSource('', file);
  for (const [k, at] of r.sources) ctx.sources.set(k, at);
  return r.raw;
}

function parseYamlFile(file: string, text: string, ctx: Context): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors.slice(0, MAX_PARSE_ERRORS)) {
      const pos = e.linePos?.[0];
      const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
      const msg = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      ctx.add('', `${where}: invalid YAML: ${msg}`);
    }
    if (doc.errors.length > MAX_PARSE_ERRORS) {
      ctx.add('', `${file}: ${doc.errors.length - MAX_PARSE_ERRORS} more YAML errors`);
    }
    return undefined;
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    ctx.add('', `${file}: invalid YAML: ${(err as Error).message}`);
    return undefined;
  }
}

function parseJsonFile(file: string, text: string, ctx: Context): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (err) {
    const offset = jsonErrorOffset(text);
    const { line, col } = lineCol(text, offset);
    const msg = (err as Error).message
      .replace(/ in JSON at position \d+.*$/, '')
      .replace(/, ".*" is not valid JSON$/s, '');
    ctx.add('', `${file}:${line}:${col}: invalid JSON: ${msg}`);
    return undefined;
  }
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, col: offset - start + 1 };
}

/** Offset of the first JSON syntax error in `text` (only called once JSON.parse has failed). */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const literal = (word: string): void => {
    for (const ch of word) {
      if (text[i] !== ch) fail();
      i++;
    }
  };
  const string = (): void => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 34) break;
      if (c < 32) fail();
      if (c === 92) {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
      }
      i++;
    }
    i++;
  };
  const number = (): void => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) number();
    else fail();
  };
  try {
    if (text.charCodeAt(0) === 0xfeff) i = 1;
    value();
    ws();
    if (i < text.length) fail();
    return text.length;
  } catch (pos) {
    return typeof pos === 'number' ? pos : 0;
  }
}

/** Records `file:line` for every key of the file (JSON is read as YAML for this; best effort). */
function recordLocations(file: string, text: string, ctx: Context): void {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
  if (doc.errors.length > 0) return;
  const at = (node: { range?: [number, number, number] | null } | null | undefined): string | undefined => {
    const off = node?.range?.[0];
    return off === undefined ? undefined : `${file}:${lc.linePos(off).line}`;
  };
  const walk = (node: unknown, path: string): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isScalar(pair.key)) continue;
        const p = path === '' ? String(pair.key.value) : `${path}.${String(pair.key.value)}`;
        const loc = at(pair.key);
        if (loc) ctx.sources.set(p, loc);
        walk(pair.value, p);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const p = `${path}[${i}]`;
        const loc = at(item as YamlNode);
        if (loc) ctx.sources.set(p, loc);
        walk(item, p);
      });
    }
  };
  walk(doc.contents, '');
}

// ---------------------------------------------------------------------------------------------
// Environment layer

interface EnvTarget {
  path: Seg[];
  spec: FieldSpec;
}

function applyEnv(raw: Raw, env: NodeJS.ProcessEnv, ctx: Context): void {
  const names = Object.keys(env)
    .filter((n) => n.startsWith(ENV_PREFIX) && !RESERVED_ENV.has(n))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  for (const name of names) {
    const text = env[name];
    if (text === undefined || text === '') continue; // empty means unset
    const target = resolveEnvName(name, ctx);
    if (!target) continue;
    const source = `env ${name}`;
    let value: unknown;
    if (target.spec.kind === 'object' || target.spec.kind === 'array') {
      try {
        value = JSON.parse(text);
      } catch {
        ctx.add(pathString(target.path), `must be JSON (${target.spec.kind === 'array' ? 'a list' : 'an object'}) when set from the environment`, {
          got: text,
          source,
        });
        continue;
      }
    } else {
      value = coerceString(text, target.spec);
    }
    setRaw(raw, target.path, value, source, ctx);
  }
}

function resolveEnvName(name: string, ctx: Context): EnvTarget | undefined {
  const segs = name.slice(ENV_PREFIX.length).split('__');
  const path: Seg[] = [];
  let spec: FieldSpec = CONFIG_SCHEMA;
  for (const seg of segs) {
    if (spec.kind === 'array' && /^\d+$/.test(seg)) {
      path.push(Number(seg));
      spec = spec.of;
      continue;
    }
    if (spec.kind === 'object') {
      const key: string | undefined = Object.keys(spec.fields).find((k) => upperSnake(k) === seg.toUpperCase());
      if (key !== undefined) {
        path.push(key);
        spec = spec.fields[key]!;
        continue;
      }
    }
    const known = allEnvNames();
    const best = closest(name, known.map((k) => k.name), (s) => s.toUpperCase());
    const hint = best !== undefined ? `, did you mean ${best} (${known.find((k) => k.name === best)!.key})?` : '';
    ctx.add(name, `unknown setting (not a configuration key)${hint}`, { source: 'environment' });
    return undefined;
  }
  return { path, spec };
}

function allEnvNames(): { name: string; key: string }[] {
  const out: { name: string; key: string }[] = [];
  const walk = (spec: FieldSpec, path: Seg[]): void => {
    if (spec.kind === 'object') {
      if (path.length > 0) out.push({ name: envNameFor(path), key: pathString(path) });
      for (const [k, f] of Object.entries(spec.fields)) walk(f, [...path, k]);
    } else if (spec.kind === 'array') {
      out.push({ name: envNameFor(path), key: pathString(path) });
      walk(spec.of, [...path, 0]);
    } else {
      out.push({ name: envNameFor(path), key: pathString(path) });
    }
  };
  walk(CONFIG_SCHEMA, []);
  return out;
}

/** Environment and flag values are strings; turn them into what the key expects when they are
 *  clearly that (anything else is left as a string for the validator to report). */
function coerceString(text: string, spec: FieldSpec): unknown {
  const t = text.trim();
  if (spec.kind === 'int') {
    if (/^[+-]?\d+$/.test(t) || /^0x[0-9a-f]+$/i.test(t)) return Number(t);
    return text;
  }
  if ((spec.kind === 'duration' || spec.kind === 'bytes') && /^0x[0-9a-f]+$/i.test(t)) return Number(t);
  if (spec.kind === 'bool') {
    const l = t.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(l)) return true;
    if (['false', '0', 'no', 'off'].includes(l)) return false;
    return text;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Flag layer

function applyFlags(raw: Raw, flags: ConfigFlags, ctx: Context): void {
  for (const [name, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const def = FLAG_PATHS[name as keyof ConfigFlags];
    if (!def) {
      ctx.add(`flags.${name}`, `unknown flag (known: ${Object.keys(FLAG_PATHS).join(', ')})`, { source: 'flags' });
      continue;
    }
    const spec = specAt(def.path)!;
    const v = typeof value === 'string' ? coerceString(value, spec) : value;
    setRaw(raw, def.path, v, `flag ${def.flag}`, ctx);
  }
}

function specAt(path: readonly Seg[]): FieldSpec | undefined {
  let spec: FieldSpec | undefined = CONFIG_SCHEMA;
  for (const seg of path) {
    if (spec?.kind === 'array' && typeof seg === 'number') spec = spec.of;
    else if (spec?.kind === 'object' && typeof seg === 'string' && Object.hasOwn(spec.fields, seg)) spec = spec.fields[seg];
    else return undefined;
  }
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Merging into the raw tree

function isPlainObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets `value` at `path` in the raw tree, creating containers on the way. Arrays that do not
 *  exist yet start from the default (so `SKEIN_LISTENERS__0__PORT` edits the default listener). */
function setRaw(raw: Raw, path: readonly Seg[], value: unknown, source: string, ctx: Context): void {
  let node: unknown = raw;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    const next = path[i + 1]!;
    const container = node as Record<string | number, unknown>;
    let child = container[seg];
    if (child === undefined || child === null) {
      if (typeof next === 'number') {
        const spec = specAt(path.slice(0, i + 1));
        child = spec?.kind === 'array' ? (toFileForm(spec, pick(defaultConfig(), path.slice(0, i + 1))) as unknown[]) : [];
      } else {
        child = {};
      }
      container[seg] = child;
    }
    if (typeof next === 'number') {
      if (!Array.isArray(child)) return; // the file value is wrong; the validator reports it
      if (next > child.length) {
        ctx.add(pathString(path.slice(0, i + 2)), `index ${next} is past the end of ${pathString(path.slice(0, i + 1))} (${child.length} ${child.length === 1 ? 'entry' : 'entries'}; add entries in order)`, {
          source,
        });
        return;
      }
      if (next === child.length) child.push({});
    } else if (!isPlainObject(child)) {
      return; // the file value is wrong; the validator reports it
    }
    node = child;
  }
  const last = path[path.length - 1]!;
  const container = node as Record<string | number, unknown>;
  const old = container[last];
  if (isPlainObject(old) && isPlainObject(value)) {
    // merged: only the keys the variable gives change their source
    container[last] = deepMerge(old, value);
    const mark = (v: Raw, before: Raw, p: Seg[]): void => {
      for (const [k, child] of Object.entries(v)) {
        const prev = Object.hasOwn(before, k) ? before[k] : undefined;
        if (isPlainObject(child) && isPlainObject(prev)) mark(child, prev, [...p, k]);
        else ctx.setSource(pathString([...p, k]), source);
      }
    };
    mark(value, old, [...path]);
  } else {
    container[last] = value;
    ctx.setSource(pathString(path), source);
  }
}

function deepMerge(a: Raw, b: Raw): Raw {
  const out: Raw = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const merged = Object.hasOwn(out, k) && isPlainObject(out[k]) && isPlainObject(v) ? deepMerge(out[k] as Raw, v) : v;
    Object.defineProperty(out, k, { value: merged, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Value at a schema path (file keys) inside a TypeScript-form object. */
function pick(obj: unknown, path: readonly Seg[]): unknown {
  let spec: FieldSpec | undefined = CONFIG_SCHEMA;
  let node: unknown = obj;
  for (const seg of path) {
    if (spec?.kind === 'object' && typeof seg === 'string') {
      const f: FieldSpec | undefined = Object.hasOwn(spec.fields, seg) ? spec.fields[seg] : undefined;
      if (!f) return undefined;
      node = (node as Raw | undefined)?.[fieldName(seg, f)];
      spec = f;
    } else if (spec?.kind === 'array' && typeof seg === 'number') {
      node = (node as unknown[] | undefined)?.[seg];
      spec = spec.of;
    } else return undefined;
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Validation (file form → TypeScript form)

function validateRoot(raw: unknown, ctx: Context): SkeinConfig {
  return validateObject(CONFIG_SCHEMA, raw, [], defaultConfig() as unknown as Raw, ctx) as unknown as SkeinConfig;
}

function validateField(spec: FieldSpec, value: unknown, path: Seg[], def: unknown, ctx: Context): unknown {
  switch (spec.kind) {
    case 'object':
      return validateObject(spec, value, path, def as Raw, ctx);
    case 'array':
      return validateArray(spec, value, path, def as unknown[], ctx);
    default: {
      const r = validateLeaf(spec, value);
      if (r.ok) return r.value;
      ctx.add(pathString(path), r.problem, { got: value });
      return def;
    }
  }
}

function validateObject(spec: ObjectSpec, value: unknown, path: Seg[], def: Raw, ctx: Context): Raw {
  const out: Raw = {};
  let input: Raw = {};
  if (value === null || value === undefined) {
    // an empty section (`limits:` with everything commented out) means all defaults
  } else if (!isPlainObject(value)) {
    ctx.add(pathString(path), 'must be a mapping of keys', { got: value });
  } else {
    input = value;
  }
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(spec.fields, key)) ctx.add(pathString([...path, key]), unknownKeyProblem(spec, path, key));
  }
  for (const [key, f] of Object.entries(spec.fields)) {
    const name = fieldName(key, f);
    const d = def[name];
    const v = input[key];
    out[name] = v === undefined ? structuredClone(d) : validateField(f, v, [...path, key], d, ctx);
  }
  return out;
}

function validateArray(spec: ArraySpec, value: unknown, path: Seg[], def: unknown[], ctx: Context): unknown[] {
  const key = pathString(path);
  if (!Array.isArray(value)) {
    ctx.add(key, 'must be a list', { got: value });
    return structuredClone(def);
  }
  if (value.length < spec.minItems || value.length > spec.maxItems) {
    ctx.add(key, `must have between ${spec.minItems} and ${spec.maxItems} entries`, { got: value });
    if (value.length === 0) return structuredClone(def);
  }
  const items = value.map((item, i) => validateObject(spec.of, item, [...path, i], spec.itemDefault(isPlainObject(item) ? item : undefined), ctx));
  for (const p of spec.check?.(items) ?? []) ctx.add(pathString([...path, p.index]), p.problem);
  return items;
}

type LeafResult = { ok: true; value: unknown } | { ok: false; problem: string };

function validateLeaf(spec: LeafSpec, v: unknown): LeafResult {
  const bad = (problem: string): LeafResult => ({ ok: false, problem });
  switch (spec.kind) {
    case 'string': {
      if (typeof v !== 'string') {
        return bad(typeof v === 'number' || typeof v === 'boolean' ? 'must be a string (quote it in YAML)' : 'must be a string');
      }
      if (spec.minLength !== undefined && v.length < spec.minLength) {
        return bad(spec.minLength === 1 ? 'must not be empty' : `must be at least ${spec.minLength} characters`);
      }
      if (spec.maxLength !== undefined && v.length > spec.maxLength) return bad(`must be at most ${spec.maxLength} characters`);
      if (spec.pattern && !spec.pattern.test(v)) return bad(spec.patternProblem ?? `must match ${spec.pattern}`);
      return { ok: true, value: v };
    }
    case 'int': {
      if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return bad('must be an integer, not a string (remove the quotes)');
      if (typeof v !== 'number' || !Number.isInteger(v)) return bad('must be an integer');
      if (v < spec.min || v > spec.max) return bad(`must be between ${spec.min} and ${spec.max}${spec.unit ? ' ' + spec.unit : ''}`);
      return { ok: true, value: v };
    }
    case 'bool':
      if (typeof v === 'boolean') return { ok: true, value: v };
      return bad(typeof v === 'string' && /^\s*(true|false)\s*$/i.test(v) ? 'must be true or false, not a string (remove the quotes)' : 'must be true or false');
    case 'enum': {
      if (typeof v === 'string' && spec.values.includes(v)) return { ok: true, value: v };
      const near = typeof v === 'string' ? spec.values.find((x) => x.toLowerCase() === v.trim().toLowerCase()) : undefined;
      return bad(`must be one of ${spec.values.map((x) => JSON.stringify(x)).join(', ')}${near ? ` (did you mean "${near}"?)` : ''}`);
    }
    case 'bytes':
      return validateBytes(spec, v);
    case 'duration':
      return validateDuration(spec, v);
  }
}

const BYTES_SYNTAX =
  'must be a byte size: a number of bytes or a string like "512KiB" or "64MiB" (units B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)';

function validateBytes(spec: BytesSpec, v: unknown): LeafResult {
  const r = parseBytes(v);
  if (!r.ok) return { ok: false, problem: r.reason === 'fraction' ? 'must be a whole number of bytes' : BYTES_SYNTAX };
  if (r.value < spec.min || r.value > spec.max) {
    return {
      ok: false,
      problem:
        spec.max >= Number.MAX_SAFE_INTEGER
          ? `must be at least ${spec.min} byte${spec.min === 1 ? '' : 's'}`
          : `must be between ${spec.min} and ${spec.max} bytes`,
    };
  }
  return { ok: true, value: r.value };
}

const DURATION_SYNTAX = 'must be a duration: a number of seconds or a string like "500ms", "10s", "5m", "2h", "14d"';

function validateDuration(spec: DurationSpec, v: unknown): LeafResult {
  const r = parseDurationMs(v, 1000);
  const whole = spec.unit === 's' ? 'must be a whole number of seconds' : 'must be a whole number of milliseconds';
  if (!r.ok) return { ok: false, problem: r.reason === 'fraction' ? whole : DURATION_SYNTAX };
  const ms = r.value;
  const zeroOk = ms === 0 && spec.zeroMeans !== undefined;
  if (!zeroOk && (ms < spec.minMs || ms > spec.maxMs)) {
    const range = `must be between ${formatDurationMs(spec.minMs)} and ${formatDurationMs(spec.maxMs)}`;
    return { ok: false, problem: spec.zeroMeans ? `${range}, or 0 (${spec.zeroMeans})` : range };
  }
  if (spec.unit === 's') {
    if (ms % 1000 !== 0) return { ok: false, problem: whole };
    return { ok: true, value: ms / 1000 };
  }
  return { ok: true, value: ms };
}

// ---------------------------------------------------------------------------------------------
// Unknown keys: suggestions

function unknownKeyProblem(spec: ObjectSpec, path: Seg[], key: string): string {
  if (key.includes('.')) {
    const parts = key.split('.');
    if (specAt([...path, ...parts])) {
      return `unknown key; keys are nested, write it as ${parts.map((p) => `"${p}:"`).join(' containing ')}`;
    }
  }
  const sibling = closest(key, Object.keys(spec.fields), normKey);
  if (sibling !== undefined) return `unknown key, did you mean "${pathString([...path, sibling])}"?`;
  const elsewhere = allKeyPaths().find((p) => normKey(p.last) === normKey(key));
  if (elsewhere) return `unknown key here, did you mean "${elsewhere.path}"?`;
  return `unknown key (known keys here: ${Object.keys(spec.fields).join(', ')})`;
}

function allKeyPaths(): { path: string; last: string }[] {
  const out: { path: string; last: string }[] = [];
  const walk = (spec: FieldSpec, path: Seg[]): void => {
    if (spec.kind === 'object') for (const [k, f] of Object.entries(spec.fields)) {
      out.push({ path: pathString([...path, k]), last: k });
      walk(f, [...path, k]);
    }
    else if (spec.kind === 'array') walk(spec.of, [...path, 0]);
  };
  walk(CONFIG_SCHEMA, []);
  return out;
}

function normKey(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '');
}

/** The candidate closest to `word` when it is a likely typo (edit distance ≤ a quarter of its length). */
function closest(word: string, candidates: readonly string[], norm: (s: string) => string): string | undefined {
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, norm(c));
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  const limit = Math.max(1, Math.floor(w.length / 4));
  return bestD <= limit ? best : undefined;
}

/** Edit distance counting an adjacent transposition as one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

function upperSnake(camel: string): string {
  return camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// TypeScript form → file form

/** A TypeScript-form value of `spec` in file form (see `configToObject`). */
export function toFileForm(spec: FieldSpec, value: unknown): unknown {
  switch (spec.kind) {
    case 'object': {
      const out: Raw = {};
      for (const [key, f] of Object.entries(spec.fields)) out[key] = toFileForm(f, (value as Raw)[fieldName(key, f)]);
      return out;
    }
    case 'array':
      return (value as unknown[]).map((item) => toFileForm(spec.of, item));
    case 'duration': {
      const ms = spec.unit === 's' ? (value as number) * 1000 : (value as number);
      return formatDurationMs(ms);
    }
    case 'bytes': {
      const s = formatBytes(value as number);
      return /^\d+B$/.test(s) ? value : s;
    }
    default:
      return structuredClone(value);
  }
}
