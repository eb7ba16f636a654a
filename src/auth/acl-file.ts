/**
 * Mosquitto ACL files (`acl_file`; compatibility.md section 1.2):
 *
 *   # comment
 *   topic read $SYS/#              lines before any `user` apply to anonymous clients
 *   user alice                     the following `topic` lines are alice's (user name, not client id)
 *   topic readwrite home/alice/#
 *   topic deny home/alice/secret
 *   pattern write sensor/%u/data   patterns apply to every client; %c = client id, %u = user name
 *
 * Access is `read`, `write`, `readwrite` (the default when omitted) or `deny`. A check looks at
 * the client's own `topic` rules (by user name; anonymous clients: the lines before any `user`)
 * and at every `pattern`. Any matching `deny` refuses, whatever the order of the lines; then a
 * matching grant with the needed access allows; otherwise the answer is no (default deny).
 *
 * `%c`/`%u` are replaced only when they are a whole topic level. A pattern with `%u` does not
 * apply to clients without a user name; clients whose id or user name holds `+`, `#` or `/` get
 * no pattern rules at all (they could otherwise widen them).
 *
 * Checks:
 *   publish   - `write` on the topic name;
 *   delivery  - `read` on the topic name of the message;
 *   subscribe - the filter must be covered by one `read` rule (every topic it can match is
 *               readable) and not covered by a `deny` rule. A partly denied subscription (`#`
 *               with `topic deny secret/#`) is granted, and the denied topics are filtered at
 *               delivery. (Mosquitto 2.0 grants every subscription and filters at delivery only.)
 */
import { readFile } from 'node:fs/promises';
import { validateTopicFilter } from '../topics/validate.js';
import { filterCovers, filterMatches, substitute, unshared } from './topic-match.js';

export const READ = 1;
export const WRITE = 2;
/** Bits: READ | WRITE. */
type Access = number;

/** One rule: the accesses it grants and those it denies (a `deny` line denies both). */
export interface Rule {
  allow: Access;
  deny: Access;
  filter: string;
}

export interface AclFileIssue {
  line: number;
  problem: string;
}

export interface AclRules {
  /** Rules of clients without a user name. */
  anonymous: Rule[];
  /** Rules by user name. */
  users: Map<string, Rule[]>;
  patterns: Rule[];
}

export interface ParsedAclFile {
  rules: AclRules;
  issues: AclFileIssue[];
}

/** What a rule set says about one check. */
export type AclDecision = 'allow' | 'deny' | 'nomatch';

const ACCESS: Record<string, Access> = { read: READ, write: WRITE, readwrite: READ | WRITE, deny: 0 };

/** Parses the text of an ACL file; never throws. Bad lines are reported and skipped. */
export function parseAclFile(text: string): ParsedAclFile {
  const rules: AclRules = { anonymous: [], users: new Map(), patterns: [] };
  const issues: AclFileIssue[] = [];
  let current = rules.anonymous;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const raw = lines[i]!.replace(/\s+$/, '');
    if (raw.trim() === '' || raw.startsWith('#')) continue;
    const m = /^\s*(\S+)\s*(.*)$/.exec(raw)!;
    const keyword = m[1]!;
    const rest = m[2]!;
    if (keyword === 'user') {
      const name = rest.trim();
      if (name === '') {
        issues.push({ line, problem: 'user without a name' });
        // Rules up to the next valid `user` line belong to nobody.
        current = [];
        continue;
      }
      let list = rules.users.get(name);
      if (!list) rules.users.set(name, (list = []));
      current = list;
      continue;
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      issues.push({ line, problem: `unknown keyword "${keyword}" (expected user, topic or pattern)` });
      continue;
    }
    // `topic [access] <filter>`: the filter is the rest of the line (it may contain spaces when
    // the access is given).
    const a = /^(\S+)(?:\s+(.*))?$/.exec(rest);
    if (!a) {
      issues.push({ line, problem: `${keyword} without a topic` });
      continue;
    }
    let access: Access = READ | WRITE;
    let filter = a[1]!;
    if (a[2] !== undefined) {
      const acc = ACCESS[a[1]!];
      if (acc === undefined) {
        issues.push({ line, problem: `invalid access "${a[1]}" (expected read, write, readwrite or deny)` });
        continue;
      }
      access = acc;
      filter = a[2].trim();
    }
    const bad = validateTopicFilter(filter);
    if (bad) {
      issues.push({ line, problem: `invalid topic filter "${filter}": ${bad}` });
      continue;
    }
    if (keyword === 'pattern' && /%[cu]/.test(filter.split('/').filter((l) => l !== '%c' && l !== '%u').join('/'))) {
      issues.push({ line, problem: `"%c"/"%u" must be a whole topic level in "${filter}"; used literally` });
    }
    const rule: Rule = access === 0 ? { allow: 0, deny: READ | WRITE, filter } : { allow: access, deny: 0, filter };
    (keyword === 'pattern' ? rules.patterns : current).push(rule);
  }
  return { rules, issues };
}

/** Evaluates the rules of one client for a topic name (publish/delivery) or a filter (subscribe). */
export function checkAcl(
  rules: AclRules,
  client: { clientId: string; username?: string },
  topicOrFilter: string,
  access: typeof READ | typeof WRITE,
  subscribe = false,
): AclDecision {
  const own = client.username === undefined ? rules.anonymous : (rules.users.get(client.username) ?? []);
  return checkRules([...own, ...rules.patterns.map((p) => withSubstitution(p, client))], topicOrFilter, access, subscribe);
}

function withSubstitution(p: Rule, client: { clientId: string; username?: string }): Rule | undefined {
  const filter = substitute(p.filter, client.clientId, client.username);
  return filter === undefined ? undefined : { ...p, filter };
}

/**
 * Deny first: a matching rule that denies the access refuses, wherever it is; then a matching
 * rule that grants it allows. Subscriptions must be covered by the rule (see the file comment);
 * `$share/{group}/` is ignored.
 */
export function checkRules(rules: Array<Rule | undefined>, topicOrFilter: string, access: typeof READ | typeof WRITE, subscribe = false): AclDecision {
  const target = subscribe ? unshared(topicOrFilter) : topicOrFilter;
  const test = subscribe ? filterCovers : filterMatches;
  for (const r of rules) if (r && (r.deny & access) !== 0 && test(r.filter, target)) return 'deny';
  for (const r of rules) if (r && (r.allow & access) !== 0 && test(r.filter, target)) return 'allow';
  return 'nomatch';
}

/** The rules of one ACL file; `load()` again to reload. */
export class AclFile {
  rules: AclRules = { anonymous: [], users: new Map(), patterns: [] };

  constructor(readonly path: string) {}

  /** Reads the file; throws when it cannot be read (the old rules stay). Returns the issues. */
  async load(): Promise<AclFileIssue[]> {
    const parsed = parseAclFile(await readFile(this.path, 'utf8'));
    this.rules = parsed.rules;
    return parsed.issues;
  }

  check(client: { clientId: string; username?: string }, topicOrFilter: string, access: typeof READ | typeof WRITE, subscribe = false): AclDecision {
    return checkAcl(this.rules, client, topicOrFilter, access, subscribe);
  }
}
