export * from './schema.js';
export {
  ConfigError,
  ENV_PREFIX,
  RESERVED_ENV,
  configFromObject,
  configToObject,
  envNameFor,
  loadConfig,
  type ConfigFlags,
  type ConfigIssue,
  type LoadConfigOptions,
} from './load.js';
export { formatBytes, formatDurationMs, parseBytes, parseDurationMs, type UnitResult } from './units.js';
