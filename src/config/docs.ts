/**
 * Renders the key table of `src/config/README.md` from `CONFIG_SCHEMA`, so the documentation
 * cannot drift from the validator (a test compares them).
 *
 * Regenerate after changing the schema:
 *   node <outDir>/config/docs.js src/config/README.md
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configToObject, envNameFor, toFileForm } from './load.js';
import { CONFIG_SCHEMA, defaultConfig, fieldName, type FieldSpec, type LeafSpec } from './schema.js';
import { formatDurationMs } from './units.js';

export const BEGIN_MARK = '<!-- BEGIN GENERATED KEY TABLE (src/config/docs.ts) -->';
export const END_MARK = '<!-- END GENERATED KEY TABLE -->';

type Seg = string | number;

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function typeOf(spec: LeafSpec): string {
  switch (spec.kind) {
    case 'string':
      return 'string';
    case 'int':
      return spec.unit ? `integer (${spec.unit})` : 'integer';
    case 'bool':
      return 'boolean';
    case 'enum':
      return 'enum';
    case 'bytes':
      return 'byte size';
    case 'duration':
      return 'duration';
  }
}

function allowed(spec: LeafSpec): string {
  switch (spec.kind) {
    case 'string': {
      const parts: string[] = [];
      if (spec.minLength === 1) parts.push('non-empty');
      else if (spec.minLength) parts.push(`≥ ${spec.minLength} chars`);
      if (spec.maxLength !== undefined) parts.push(`≤ ${spec.maxLength} chars`);
      if (spec.patternProblem) parts.push(spec.patternProblem.replace(/^must not contain /, 'no ').replace(/^must /, ''));
      return parts.join('; ') || 'any';
    }
    case 'int':
      return `${spec.min} – ${spec.max}`;
    case 'bool':
      return '`true`, `false`';
    case 'enum':
      return spec.values.map((v) => `\`${v}\``).join(', ');
    case 'bytes':
      return spec.max >= Number.MAX_SAFE_INTEGER ? `≥ ${spec.min} B` : `${spec.min} B – ${spec.max} B`;
    case 'duration': {
      const range = `${formatDurationMs(spec.minMs)} – ${formatDurationMs(spec.maxMs)}`;
      return spec.zeroMeans ? `0 (${spec.zeroMeans}) or ${range}` : range;
    }
  }
}

function tsName(path: Seg[], spec: FieldSpec): string {
  return path.map((s) => (typeof s === 'number' ? '[]' : s)).join('.').replace(/\.\[\]/g, '[]') + (spec.kind === 'duration' ? ` (${spec.unit})` : '');
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The Markdown table of every key. */
export function renderConfigTable(): string {
  const defaults = configToObject(defaultConfig());
  const rows: string[] = [
    '| Key (file) | Environment | Type | Default | Allowed | TypeScript field | Description |',
    '|---|---|---|---|---|---|---|',
  ];
  const walk = (spec: FieldSpec, filePath: Seg[], tsPath: Seg[], def: unknown): void => {
    if (spec.kind === 'object') {
      for (const [key, f] of Object.entries(spec.fields)) {
        walk(f, [...filePath, key], [...tsPath, fieldName(key, f)], (def as Record<string, unknown> | undefined)?.[key]);
      }
      return;
    }
    const key = filePath.map((s) => (typeof s === 'number' ? '[]' : s)).join('.').replace(/\.\[\]/g, '[]');
    const env = envNameFor(filePath).replace(/__0(?=__|$)/g, '__<n>');
    if (spec.kind === 'array') {
      rows.push(
        `| \`${key}\` | \`${env}\` (JSON) | list (${spec.minItems} – ${spec.maxItems}) | \`${cell(JSON.stringify(def))}\` | see below | \`${tsName(tsPath, spec)}\` | ${cell(spec.doc)} |`,
      );
      walk(spec.of, [...filePath, 0], [...tsPath, 0], toFileForm(spec.of, spec.itemDefault()));
      return;
    }
    const d = spec.defaultDoc ?? `\`${show(def)}\``;
    rows.push(
      `| \`${key}\` | \`${env}\` | ${typeOf(spec)} | ${cell(d)} | ${cell(allowed(spec))} | \`${tsName(tsPath, spec)}\` | ${cell(spec.doc)} |`,
    );
  };
  walk(CONFIG_SCHEMA, [], [], defaults);
  return rows.join('\n');
}

/** `readme` with the text between the markers replaced by the current table. */
export function updateReadme(readme: string): string {
  const start = readme.indexOf(BEGIN_MARK);
  const end = readme.indexOf(END_MARK);
  if (start < 0 || end < start) throw new Error('README.md: generated-table markers not found');
  return readme.slice(0, start + BEGIN_MARK.length) + '\n' + renderConfigTable() + '\n' + readme.slice(end);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const target = process.argv[2];
  if (!target) {
    process.stdout.write(renderConfigTable() + '\n');
  } else {
    writeFileSync(target, updateReadme(readFileSync(target, 'utf8')));
  }
}
