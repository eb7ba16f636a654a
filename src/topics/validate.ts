/**
 * Topic Name / Topic Filter validation (MQTT 5.0 §4.7, §4.8.2; MQTT 3.1.1 §4.7).
 *
 * Every function returns `undefined` when the input is valid and a short reason otherwise, so the
 * caller can pick the reason code for its protocol version (e.g. 0x90 Topic Name invalid, 0x8F
 * Topic Filter invalid) or close the connection.
 *
 * Statement ids are quoted as numbered in MQTT 5.0. Where MQTT 3.1.1 numbers the same rule
 * differently it is given as "3.1.1: ..." (the wildcard ids in §4.7.1 shifted by one in 5.0).
 */

export interface TopicLimits {
  /** Maximum length in UTF-8 bytes (never more than 65535 whatever is given). */
  maxLength?: number;
  /** Maximum number of levels ("a/b" has 2, "/" has 2). */
  maxLevels?: number;
}

/** A Topic Name or Filter MUST NOT encode to more than 65,535 bytes [MQTT-4.7.3-3]. */
export const MAX_TOPIC_BYTES = 65535;

const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;
const DOLLAR = 0x24;

/**
 * One pass over the UTF-16 code units: counts UTF-8 bytes and levels, rejects NUL and lone
 * surrogates, and places wildcards (rejecting them outright when `filter` is false).
 */
function scan(s: string, filter: boolean, limits: TopicLimits | undefined): string | undefined {
  const n = s.length;
  // [MQTT-4.7.3-1] at least one character
  if (n === 0) return filter ? 'empty topic filter' : 'empty topic name';
  let bytes = 0;
  let levels = 1;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      bytes += 1;
      if (c === SLASH) levels++;
      // [MQTT-4.7.3-2] (and [MQTT-1.5.4-2]; 3.1.1: MQTT-1.5.3-2) no U+0000
      else if (c === 0) return 'contains U+0000';
      else if (c === PLUS) {
        // [MQTT-4.7.0-1] / [MQTT-3.3.2-2] no wildcards in a Topic Name (3.1.1: MQTT-4.7.1-1)
        if (!filter) return 'wildcard in topic name';
        // [MQTT-4.7.1-2] '+' must occupy an entire level (3.1.1: MQTT-4.7.1-3)
        if ((i > 0 && s.charCodeAt(i - 1) !== SLASH) || (i + 1 < n && s.charCodeAt(i + 1) !== SLASH)) {
          return "'+' must occupy a whole level";
        }
      } else if (c === HASH) {
        if (!filter) return 'wildcard in topic name'; // [MQTT-4.7.0-1] / [MQTT-3.3.2-2]
        // [MQTT-4.7.1-1] '#' alone or after '/', and last character (3.1.1: MQTT-4.7.1-2)
        if (i + 1 !== n || (i > 0 && s.charCodeAt(i - 1) !== SLASH)) return "'#' must be the whole last level";
      }
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      // JS strings can hold unpaired surrogates (e.g. from a lenient decoder); they have no
      // well-formed UTF-8 encoding [MQTT-1.5.4-1] (3.1.1: MQTT-1.5.3-1).
      const d = c <= 0xdbff && i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return 'unpaired surrogate';
      bytes += 4;
      i++;
    } else {
      bytes += 3;
    }
  }
  // [MQTT-4.7.3-3]
  if (bytes > MAX_TOPIC_BYTES) return 'longer than 65535 bytes';
  if (limits !== undefined) {
    if (limits.maxLength !== undefined && bytes > limits.maxLength) return 'longer than the configured maximum';
    if (limits.maxLevels !== undefined && levels > limits.maxLevels) return 'more levels than the configured maximum';
  }
  return undefined;
}

/** Checks a Topic Name (PUBLISH topic, Will Topic, Response Topic). */
export function validateTopicName(name: string, limits?: TopicLimits): string | undefined {
  return scan(name, false, limits);
}

/**
 * Checks a Topic Filter (SUBSCRIBE / UNSUBSCRIBE). A shared filter (`$share/g/f`) is also a
 * syntactically valid filter; use `parseSharedFilter` first to apply the §4.8.2 rules and then
 * validate its inner filter against the limits.
 */
export function validateTopicFilter(filter: string, limits?: TopicLimits): string | undefined {
  return scan(filter, true, limits);
}

export interface SharedFilter {
  /** The ShareName. */
  group: string;
  /** The Topic Filter after `$share/{ShareName}/`. */
  filter: string;
}

const SHARE_PREFIX = '$share/';

/**
 * Splits `$share/{ShareName}/{filter}` (MQTT 5.0 §4.8.2).
 * Returns `undefined` when `filter` is not a shared filter at all, `'invalid'` when it starts with
 * `$share/` but is malformed. The inner filter is checked without limits; the caller applies them.
 */
export function parseSharedFilter(filter: string): SharedFilter | undefined | 'invalid' {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf('/', SHARE_PREFIX.length);
  // [MQTT-4.8.2-2] the ShareName MUST be followed by '/' and then a Topic Filter
  if (slash < 0) return 'invalid';
  const group = filter.slice(SHARE_PREFIX.length, slash);
  // [MQTT-4.8.2-1] ShareName at least one character; [MQTT-4.8.2-2] no '/', '+' or '#'
  // ('/' is excluded by construction; the Topic Name rules reject the rest, plus NUL/surrogates).
  if (scan(group, false, undefined) !== undefined) return 'invalid';
  const inner = filter.slice(slash + 1);
  if (scan(inner, true, undefined) !== undefined) return 'invalid';
  return { group, filter: inner };
}

/** True for topics reserved for server use, such as `$SYS/...` (MQTT 5.0 §4.7.2). */
export function isSysTopic(topic: string): boolean {
  return topic.charCodeAt(0) === DOLLAR;
}
