/**
 * Mosquitto Dynamic Security state: the model, its JSON file format (as the plugin of Mosquitto
 * 2.0 loads and saves it), passwords (PBKDF2-SHA512 as `$7$`) and the ACL check.
 *
 * Check order (Mosquitto `plugins/dynamic-security/acl.c`): the client's roles by priority, then
 * each of its groups by priority with the group's roles by priority (the anonymous group's roles
 * for a client without username). Within one role an ACL whose topic equals the topic exactly
 * decides first, then the ACLs of that type by priority (highest first). The first match decides;
 * nothing matching -> the default access, which never grants `$CONTROL/...`.
 */
import { Buffer } from 'node:buffer';
import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';

export const ACL_TYPES = [
  'publishClientSend',
  'publishClientReceive',
  'subscribeLiteral',
  'subscribePattern',
  'unsubscribeLiteral',
  'unsubscribePattern',
] as const;
export type AclType = (typeof ACL_TYPES)[number];

export const DEFAULT_ACL_TYPES = ['publishClientSend', 'publishClientReceive', 'subscribe', 'unsubscribe'] as const;
export type DefaultAclType = (typeof DEFAULT_ACL_TYPES)[number];

/** Mosquitto 2.0 `PW_DEFAULT_ITERATIONS`. */
export const DEFAULT_ITERATIONS = 101;
const SALT_LEN = 12;
const HASH_LEN = 64;

export interface PasswordHash {
  hash: Buffer;
  salt: Buffer;
  iterations: number;
}

export interface RoleRef {
  rolename: string;
  /** -1 when not given. */
  priority: number;
}

export interface DynsecClient {
  username: string;
  clientid?: string;
  textname?: string;
  textdescription?: string;
  disabled: boolean;
  password?: PasswordHash;
  roles: RoleRef[];
}

export interface GroupMember {
  username: string;
  priority: number;
}

export interface DynsecGroup {
  groupname: string;
  textname?: string;
  textdescription?: string;
  roles: RoleRef[];
  clients: GroupMember[];
}

export interface DynsecAcl {
  acltype: AclType;
  topic: string;
  priority: number;
  allow: boolean;
}

export interface DynsecRole {
  rolename: string;
  textname?: string;
  textdescription?: string;
  acls: DynsecAcl[];
}

export interface DynsecState {
  defaultACLAccess: Record<DefaultAclType, boolean>;
  clients: Map<string, DynsecClient>;
  groups: Map<string, DynsecGroup>;
  roles: Map<string, DynsecRole>;
  anonymousGroup?: string;
}

export function emptyState(): DynsecState {
  return {
    defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
    clients: new Map(),
    groups: new Map(),
    roles: new Map(),
  };
}

// ------------------------------------------------------------------------------ ordering

/** Role lists: priority descending, then role name (Mosquitto `rolelist_cmp`). */
export function sortRoleRefs(list: RoleRef[]): void {
  list.sort((a, b) => b.priority - a.priority || cmp(a.rolename, b.rolename));
}
/** ACLs: priority descending, insertion order among equals (a stable sort). */
export function sortAcls(list: DynsecAcl[]): void {
  list.sort((a, b) => ACL_TYPES.indexOf(a.acltype) - ACL_TYPES.indexOf(b.acltype) || b.priority - a.priority);
}
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The groups of a client with the priority of its membership, in check order. */
export function groupsOf(state: DynsecState, username: string): Array<{ group: DynsecGroup; priority: number }> {
  const out: Array<{ group: DynsecGroup; priority: number }> = [];
  for (const g of state.groups.values()) {
    const m = g.clients.find((c) => c.username === username);
    if (m) out.push({ group: g, priority: m.priority });
  }
  out.sort((a, b) => b.priority - a.priority || cmp(a.group.groupname, b.group.groupname));
  return out;
}

// ------------------------------------------------------------------------------ passwords

function pbkdf2Async(password: string | Buffer, salt: Buffer, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    pbkdf2(password, salt, iterations, HASH_LEN, 'sha512', (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string, iterations = DEFAULT_ITERATIONS): Promise<PasswordHash> {
  const salt = randomBytes(SALT_LEN);
  return { hash: await pbkdf2Async(password, salt, iterations), salt, iterations };
}

export async function verifyPassword(pw: PasswordHash, password: Buffer): Promise<boolean> {
  const got = await pbkdf2Async(password, pw.salt, pw.iterations);
  return got.length === pw.hash.length && timingSafeEqual(got, pw.hash);
}

// ------------------------------------------------------------------------------ topic matching

/** `mosquitto_topic_matches_sub`: does the filter `sub` match the topic name? */
export function topicMatches(sub: string, topic: string): boolean {
  // Wildcards at the first level do not match `$` topics [MQTT-4.7.2-1]; in Mosquitto a `$`
  // filter never matches a non-`$` topic either.
  if ((sub.startsWith('$') && !topic.startsWith('$')) || (topic.startsWith('$') && !sub.startsWith('$'))) return false;
  const s = sub.split('/');
  const t = topic.split('/');
  for (let i = 0; i < s.length; i++) {
    const level = s[i]!;
    if (level === '#') return i === s.length - 1;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return s.length === t.length;
}

/** `mosquitto_sub_matches_acl`: is every topic the filter `sub` can match covered by `acl`? */
export function subMatchesAcl(acl: string, sub: string): boolean {
  if ((acl.startsWith('$') && !sub.startsWith('$')) || (sub.startsWith('$') && !acl.startsWith('$'))) return false;
  const a = acl.split('/');
  const s = sub.split('/');
  for (let i = 0; i < a.length; i++) {
    const level = a[i]!;
    if (level === '#') return true;
    if (i >= s.length) return false;
    const sl = s[i]!;
    if (level === '+') {
      if (sl === '#') return false;
      continue;
    }
    if (level !== sl) return false;
  }
  return a.length === s.length;
}

// ------------------------------------------------------------------------------ ACL check

export type Decision = 'allow' | 'deny' | 'defer';
export type AclEvent = 'publishClientSend' | 'publishClientReceive' | 'subscribe' | 'unsubscribe';

function checkRole(role: DynsecRole, event: AclEvent, topic: string): boolean | undefined {
  if (event === 'publishClientSend' || event === 'publishClientReceive') {
    const exact = role.acls.find((a) => a.acltype === event && a.topic === topic);
    if (exact) return exact.allow;
    for (const a of role.acls) if (a.acltype === event && topicMatches(a.topic, topic)) return a.allow;
    return undefined;
  }
  const literal = event === 'subscribe' ? 'subscribeLiteral' : 'unsubscribeLiteral';
  const pattern = event === 'subscribe' ? 'subscribePattern' : 'unsubscribePattern';
  const exact = role.acls.find((a) => a.acltype === literal && a.topic === topic);
  if (exact) return exact.allow;
  for (const a of role.acls) if (a.acltype === pattern && subMatchesAcl(a.topic, topic)) return a.allow;
  return undefined;
}

function checkRoleList(state: DynsecState, list: RoleRef[], event: AclEvent, topic: string): boolean | undefined {
  for (const ref of list) {
    const role = state.roles.get(ref.rolename);
    if (!role) continue;
    const r = checkRole(role, event, topic);
    if (r !== undefined) return r;
  }
  return undefined;
}

/**
 * Mosquitto's `acl_check`: 'defer' for a username dynsec does not know (another authorizer may
 * decide; alone, it is a refusal).
 */
export function checkAcl(state: DynsecState, username: string | undefined, event: AclEvent, topic: string): Decision {
  if (username !== undefined) {
    const client = state.clients.get(username);
    if (!client) return 'defer';
    const r = checkRoleList(state, client.roles, event, topic);
    if (r !== undefined) return r ? 'allow' : 'deny';
    for (const { group } of groupsOf(state, username)) {
      const g = checkRoleList(state, group.roles, event, topic);
      if (g !== undefined) return g ? 'allow' : 'deny';
    }
  } else if (state.anonymousGroup !== undefined) {
    const group = state.groups.get(state.anonymousGroup);
    if (group) {
      const g = checkRoleList(state, group.roles, event, topic);
      if (g !== undefined) return g ? 'allow' : 'deny';
    }
  }
  // Default access; `$CONTROL` is never granted by default (it must be granted explicitly).
  if (!state.defaultACLAccess[event]) return 'defer';
  return topic.startsWith('$CONTROL') ? 'defer' : 'allow';
}

// ------------------------------------------------------------------------------ JSON file

type Json = Record<string, unknown>;

/** cJSON_GetObjectItem is case-insensitive (the `init` command writes `textName`). */
function get(obj: Json, key: string): unknown {
  if (key in obj) return obj[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}
function str(obj: Json, key: string): string | undefined {
  const v = get(obj, key);
  return typeof v === 'string' ? v : undefined;
}
function int(obj: Json, key: string, dflt: number): number {
  const v = get(obj, key);
  return typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : dflt;
}
function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function arr(obj: Json, key: string): Json[] {
  const v = get(obj, key);
  return Array.isArray(v) ? v.filter(isObj) : [];
}

export function isAclType(v: unknown): v is AclType {
  return typeof v === 'string' && (ACL_TYPES as readonly string[]).includes(v);
}

/** A reference to a role that does not exist is dropped, as the plugin does. */
function loadRoleRefs(state: DynsecState, list: Json[]): RoleRef[] {
  const out: RoleRef[] = [];
  for (const r of list) {
    const rolename = str(r, 'rolename');
    if (rolename === undefined || !state.roles.has(rolename) || out.some((x) => x.rolename === rolename)) continue;
    out.push({ rolename, priority: int(r, 'priority', -1) });
  }
  sortRoleRefs(out);
  return out;
}

/** Parses the plugin's JSON document (what `plugin_opt_config_file` holds). */
export function parseState(text: string): DynsecState {
  const tree: unknown = JSON.parse(text);
  if (!isObj(tree)) throw new Error('dynamic security file: the top level must be a JSON object');
  const state = emptyState();
  const d = get(tree, 'defaultACLAccess');
  if (isObj(d)) {
    for (const k of DEFAULT_ACL_TYPES) {
      const v = get(d, k);
      if (typeof v === 'boolean') state.defaultACLAccess[k] = v;
    }
  }
  for (const r of arr(tree, 'roles')) {
    const rolename = str(r, 'rolename');
    if (!rolename || state.roles.has(rolename)) continue;
    const acls: DynsecAcl[] = [];
    for (const a of arr(r, 'acls')) {
      const acltype = get(a, 'acltype');
      const topic = str(a, 'topic');
      if (!isAclType(acltype) || topic === undefined) continue;
      if (acls.some((x) => x.acltype === acltype && x.topic === topic)) continue;
      const allow = get(a, 'allow');
      acls.push({ acltype, topic, priority: int(a, 'priority', 0), allow: allow === true });
    }
    sortAcls(acls);
    state.roles.set(rolename, { rolename, textname: str(r, 'textname'), textdescription: str(r, 'textdescription'), acls });
  }
  for (const c of arr(tree, 'clients')) {
    const username = str(c, 'username');
    if (!username || state.clients.has(username)) continue;
    let password: PasswordHash | undefined;
    const pw = str(c, 'password');
    const salt = str(c, 'salt');
    const iterations = get(c, 'iterations');
    if (pw !== undefined && salt !== undefined && typeof iterations === 'number') {
      // The plugin drops a client with a malformed hash (iterations < 1, wrong lengths).
      const hash = Buffer.from(pw, 'base64');
      const saltBuf = Buffer.from(salt, 'base64');
      if (iterations < 1 || hash.length !== HASH_LEN || saltBuf.length > SALT_LEN) continue;
      password = { hash, salt: saltBuf, iterations: Math.trunc(iterations) };
    }
    const client: DynsecClient = {
      username,
      clientid: str(c, 'clientid'),
      textname: str(c, 'textname'),
      textdescription: str(c, 'textdescription'),
      disabled: get(c, 'disabled') === true,
      password,
      roles: loadRoleRefs(state, arr(c, 'roles')),
    };
    state.clients.set(username, client);
  }
  for (const g of arr(tree, 'groups')) {
    const groupname = str(g, 'groupname');
    if (!groupname || state.groups.has(groupname)) continue;
    const clients: GroupMember[] = [];
    for (const m of arr(g, 'clients')) {
      const username = str(m, 'username');
      if (username === undefined || !state.clients.has(username) || clients.some((x) => x.username === username)) continue;
      clients.push({ username, priority: int(m, 'priority', -1) });
    }
    state.groups.set(groupname, {
      groupname,
      textname: str(g, 'textname'),
      textdescription: str(g, 'textdescription'),
      roles: loadRoleRefs(state, arr(g, 'roles')),
      clients,
    });
  }
  const anon = str(tree, 'anonymousGroup');
  if (anon !== undefined && state.groups.has(anon)) state.anonymousGroup = anon;
  return state;
}

export function roleRefsJson(list: RoleRef[]): Json[] {
  return list.map((r) => (r.priority === -1 ? { rolename: r.rolename } : { rolename: r.rolename, priority: r.priority }));
}

export function aclJson(a: DynsecAcl): Json {
  return { acltype: a.acltype, topic: a.topic, priority: a.priority, allow: a.allow };
}

function withText(out: Json, o: { textname?: string; textdescription?: string }): Json {
  if (o.textname !== undefined) out.textname = o.textname;
  if (o.textdescription !== undefined) out.textdescription = o.textdescription;
  return out;
}

/** The document as the plugin saves it (key order and optional keys as Mosquitto 2.0 writes them). */
export function stateToJson(state: DynsecState): Json {
  const byName = <T>(m: Map<string, T>) => [...m.keys()].sort(cmp).map((k) => m.get(k)!);
  const doc: Json = {
    defaultACLAccess: { ...state.defaultACLAccess },
    clients: byName(state.clients).map((c) => {
      const out: Json = { username: c.username };
      if (c.clientid !== undefined) out.clientid = c.clientid;
      withText(out, c);
      if (c.disabled) out.disabled = true;
      out.roles = roleRefsJson(c.roles);
      if (c.password) {
        out.password = c.password.hash.toString('base64');
        out.salt = c.password.salt.toString('base64');
        out.iterations = c.password.iterations;
      }
      return out;
    }),
    groups: byName(state.groups).map((g) => {
      const out = withText({ groupname: g.groupname }, g);
      out.roles = roleRefsJson(g.roles);
      out.clients = g.clients.map((m) => (m.priority === -1 ? { username: m.username } : { username: m.username, priority: m.priority }));
      return out;
    }),
    roles: byName(state.roles).map((r) => {
      const out = withText({ rolename: r.rolename }, r);
      out.acls = r.acls.map(aclJson);
      return out;
    }),
  };
  if (state.anonymousGroup !== undefined) doc.anonymousGroup = state.anonymousGroup;
  return doc;
}

export function serializeState(state: DynsecState): string {
  return JSON.stringify(stateToJson(state), null, '\t');
}

/** What `mosquitto_ctrl dynsec init <file> <user> <password>` writes: the admin client and role. */
export async function initialState(adminUser: string, adminPassword: string): Promise<DynsecState> {
  const state = emptyState();
  const acl = (acltype: AclType, topic: string): DynsecAcl => ({ acltype, topic, priority: 0, allow: true });
  state.roles.set('admin', {
    rolename: 'admin',
    acls: [
      acl('publishClientSend', '$CONTROL/dynamic-security/#'),
      acl('publishClientReceive', '$CONTROL/dynamic-security/#'),
      acl('subscribePattern', '$CONTROL/dynamic-security/#'),
      acl('publishClientReceive', '$SYS/#'),
      acl('subscribePattern', '$SYS/#'),
      acl('publishClientReceive', '#'),
      acl('subscribePattern', '#'),
      acl('unsubscribePattern', '#'),
    ],
  });
  sortAcls(state.roles.get('admin')!.acls);
  state.clients.set(adminUser, {
    username: adminUser,
    textname: 'Dynsec admin user',
    disabled: false,
    password: await hashPassword(adminPassword),
    roles: [{ rolename: 'admin', priority: -1 }],
  });
  return state;
}

export function cloneState(state: DynsecState): DynsecState {
  return parseState(serializeState(state));
}
