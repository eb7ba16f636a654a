/**
 * Topic matching for access rules: does a rule filter match a topic name (publish, delivery), and
 * does it cover a whole subscription filter (subscribe)? Both follow MQTT 4.7: wildcards in the
 * first level never match a topic starting with `$` [MQTT-4.7.2-1].
 */

/** True when `filter` matches the topic name `topic`. */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (t[0]!.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true; // also matches the parent level: "a/#" matches "a"
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * True when every topic matched by the subscription filter `sub` is also matched by `filter`
 * ("covered"): `a/#` covers `a/+/b` and `a`; `a/+` does not cover `a/#`.
 */
export function filterCovers(filter: string, sub: string): boolean {
  const f = filter.split('/');
  const s = sub.split('/');
  // A rule starting with a wildcard does not match `$` topics, so it covers no subscription that
  // can only match them.
  if (s[0]!.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; ; i++) {
    if (i < f.length && f[i] === '#') return true;
    if (i === f.length || i === s.length) return i === f.length && i === s.length;
    const fl = f[i]!;
    const sl = s[i]!;
    if (sl === '#') return false; // only '#' in the rule covers a multi-level tail
    if (sl === '+') {
      if (fl !== '+') return false;
    } else if (fl !== '+' && fl !== sl) {
      return false;
    }
  }
}

/** The filter of a subscription, without `$share/{group}/`. */
export function unshared(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  const rest = filter.slice('$share/'.length);
  const i = rest.indexOf('/');
  return i < 0 ? filter : rest.slice(i + 1);
}

/**
 * Replaces whole levels `%c` (client id) and `%u` (user name) in a rule. Returns undefined when
 * the rule needs a value the client does not have (`%u` without a user name), or when a value
 * holds a wildcard or `/` (such a client could widen its own rules: Mosquitto denies it too).
 */
export function substitute(filter: string, clientId: string, username: string | undefined): string | undefined {
  if (!filter.includes('%')) return filter;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l === '%c') {
      if (!safeValue(clientId)) return undefined;
      levels[i] = clientId;
    } else if (l === '%u') {
      if (username === undefined || !safeValue(username)) return undefined;
      levels[i] = username;
    }
  }
  return levels.join('/');
}

function safeValue(v: string): boolean {
  return v.length > 0 && !/[+#/]/.test(v);
}
