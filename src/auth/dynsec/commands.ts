/**
 * The Dynamic Security command API (`$CONTROL/dynamic-security/v1`): the 31 commands of the
 * Mosquitto plugin (`plugin.c` dispatch), their arguments, error strings and response shapes.
 *
 * `runCommands` applies a payload to a state in place and says which usernames must be
 * disconnected (Mosquitto kicks the clients whose roles, groups or ACLs changed, and disabled or
 * deleted ones, so that their existing subscriptions are re-checked on reconnect).
 */
import {
  ACL_TYPES,
  DEFAULT_ACL_TYPES,
  aclJson,
  groupsOf,
  hashPassword,
  isAclType,
  roleRefsJson,
  sortAcls,
  sortRoleRefs,
  type DefaultAclType,
  type DynsecAcl,
  type DynsecClient,
  type DynsecGroup,
  type DynsecRole,
  type DynsecState,
  type RoleRef,
} from './state.js';

export const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
export const RESPONSE_TOPIC = '$CONTROL/dynamic-security/v1/response';

type Json = Record<string, unknown>;

export interface CommandResponse {
  command: string;
  error?: string;
  data?: Json;
  correlationData?: string;
}

export interface RunResult {
  responses: CommandResponse[];
  /** The state was modified (save it). */
  changed: boolean;
  /** Usernames whose connections must be closed. */
  kick: Set<string>;
}

class CommandError extends Error {}
const fail = (msg: string): never => {
  throw new CommandError(msg);
};

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A required non-empty string argument ("Invalid/missing <what>"). */
function need(cmd: Json, key: string, what = key): string {
  const v = cmd[key];
  if (typeof v !== 'string') fail(`Invalid/missing ${what}`);
  if ((v as string).length === 0) fail(`Empty ${what}`);
  return v as string;
}
function optStr(cmd: Json, key: string, what = key): string | undefined {
  const v = cmd[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') fail(`Invalid ${what}`);
  return v as string;
}
function optInt(cmd: Json, key: string, dflt: number): number {
  const v = cmd[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(`Invalid ${key}`);
  return Math.trunc(v as number);
}
function isValidFilter(topic: string): boolean {
  if (topic.length === 0 || topic.includes('\u0000')) return false;
  const levels = topic.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return false;
    if (l.includes('+') && l !== '+') return false;
  }
  return true;
}

export class CommandContext {
  changed = false;
  readonly kick = new Set<string>();
  constructor(readonly state: DynsecState) {}

  client(username: string): DynsecClient {
    return this.state.clients.get(username) ?? fail('Client not found');
  }
  group(groupname: string): DynsecGroup {
    return this.state.groups.get(groupname) ?? fail('Group not found');
  }
  role(rolename: string): DynsecRole {
    return this.state.roles.get(rolename) ?? fail('Role not found');
  }
  kickGroup(g: DynsecGroup): void {
    for (const m of g.clients) this.kick.add(m.username);
  }
  /** Every client that holds the role directly or through a group. */
  kickRole(rolename: string): void {
    for (const c of this.state.clients.values()) if (c.roles.some((r) => r.rolename === rolename)) this.kick.add(c.username);
    for (const g of this.state.groups.values()) if (g.roles.some((r) => r.rolename === rolename)) this.kickGroup(g);
  }
  /** `roles: [{rolename, priority?}]` of create/modify commands; every role must exist. */
  roleList(v: unknown): RoleRef[] {
    if (!Array.isArray(v)) fail('Invalid/missing roles');
    const out: RoleRef[] = [];
    for (const r of v as unknown[]) {
      if (!isObj(r) || typeof r.rolename !== 'string') continue;
      if (!this.state.roles.has(r.rolename)) fail('Role not found');
      if (out.some((x) => x.rolename === r.rolename)) continue;
      out.push({ rolename: r.rolename, priority: typeof r.priority === 'number' ? Math.trunc(r.priority) : -1 });
    }
    sortRoleRefs(out);
    return out;
  }
  groupList(v: unknown): Array<{ groupname: string; priority: number }> {
    if (!Array.isArray(v)) fail('Invalid/missing groups');
    const out: Array<{ groupname: string; priority: number }> = [];
    for (const g of v as unknown[]) {
      if (!isObj(g) || typeof g.groupname !== 'string') continue;
      if (!this.state.groups.has(g.groupname)) fail('Group not found');
      out.push({ groupname: g.groupname, priority: typeof g.priority === 'number' ? Math.trunc(g.priority) : -1 });
    }
    return out;
  }
  aclList(v: unknown): DynsecAcl[] {
    if (!Array.isArray(v)) fail('Invalid/missing acls');
    const out: DynsecAcl[] = [];
    for (const a of v as unknown[]) {
      if (!isObj(a)) continue;
      if (!isAclType(a.acltype)) fail('Invalid/missing acltype');
      if (typeof a.topic !== 'string') fail('Invalid/missing topic');
      if (!isValidFilter(a.topic as string)) fail('Invalid ACL topic');
      if (out.some((x) => x.acltype === a.acltype && x.topic === a.topic)) continue;
      out.push({
        acltype: a.acltype as DynsecAcl['acltype'],
        topic: a.topic as string,
        priority: typeof a.priority === 'number' ? Math.trunc(a.priority) : 0,
        allow: a.allow === true,
      });
    }
    sortAcls(out);
    return out;
  }
}

function clientJson(state: DynsecState, c: DynsecClient): Json {
  const out: Json = { username: c.username };
  if (c.clientid !== undefined) out.clientid = c.clientid;
  if (c.textname !== undefined) out.textname = c.textname;
  if (c.textdescription !== undefined) out.textdescription = c.textdescription;
  if (c.disabled) out.disabled = true;
  out.roles = roleRefsJson(c.roles);
  out.groups = groupsOf(state, c.username).map(({ group, priority }) =>
    priority === -1 ? { groupname: group.groupname } : { groupname: group.groupname, priority },
  );
  return out;
}
function groupJson(g: DynsecGroup): Json {
  const out: Json = { groupname: g.groupname };
  if (g.textname !== undefined) out.textname = g.textname;
  if (g.textdescription !== undefined) out.textdescription = g.textdescription;
  out.clients = g.clients.map((m) => ({ username: m.username }));
  out.roles = roleRefsJson(g.roles);
  return out;
}
function roleJson(r: DynsecRole): Json {
  const out: Json = { rolename: r.rolename };
  if (r.textname !== undefined) out.textname = r.textname;
  if (r.textdescription !== undefined) out.textdescription = r.textdescription;
  out.acls = r.acls.map(aclJson);
  return out;
}
function page<T>(cmd: Json, all: T[], name: string, verbose: (x: T) => unknown, brief: (x: T) => unknown): Json {
  const count = optInt(cmd, 'count', -1);
  const offset = Math.max(0, optInt(cmd, 'offset', 0));
  const slice = count < 0 ? all.slice(offset) : all.slice(offset, offset + count);
  return { totalCount: all.length, [name]: slice.map(cmd.verbose === true ? verbose : brief) };
}
const sorted = <T>(m: Map<string, T>): T[] => [...m.keys()].sort().map((k) => m.get(k)!);

function setText(target: { textname?: string; textdescription?: string }, cmd: Json): void {
  const tn = optStr(cmd, 'textname');
  const td = optStr(cmd, 'textdescription');
  if (tn !== undefined) target.textname = tn;
  if (td !== undefined) target.textdescription = td;
}

type Handler = (ctx: CommandContext, cmd: Json) => Promise<Json | void> | Json | void;

const HANDLERS: Record<string, Handler> = {
  // ---------------------------------------------------------------- default ACL access
  setDefaultACLAccess(ctx, cmd) {
    if (!Array.isArray(cmd.acls)) fail('Missing/invalid default acl access');
    for (const a of cmd.acls as unknown[]) {
      if (!isObj(a) || typeof a.acltype !== 'string' || !(DEFAULT_ACL_TYPES as readonly string[]).includes(a.acltype)) continue;
      // The plugin reads `allow` (bool); mosquitto_ctrl 2.0 sends `access: "allow"|"deny"`.
      let allow: boolean | undefined;
      if (typeof a.allow === 'boolean') allow = a.allow;
      else if (a.access === 'allow' || a.access === 'deny') allow = a.access === 'allow';
      if (allow === undefined) continue;
      ctx.state.defaultACLAccess[a.acltype as DefaultAclType] = allow;
      ctx.changed = true;
    }
  },
  getDefaultACLAccess(ctx) {
    return { acls: DEFAULT_ACL_TYPES.map((t) => ({ acltype: t, allow: ctx.state.defaultACLAccess[t] })) };
  },

  // ---------------------------------------------------------------- clients
  async createClient(ctx, cmd) {
    const username = need(cmd, 'username');
    const password = optStr(cmd, 'password', 'password');
    const clientid = optStr(cmd, 'clientid', 'client id');
    if (ctx.state.clients.has(username)) fail('Client already exists');
    const roles = cmd.roles === undefined ? [] : ctx.roleList(cmd.roles);
    const groups = cmd.groups === undefined ? [] : ctx.groupList(cmd.groups);
    const client: DynsecClient = { username, disabled: false, roles };
    if (clientid !== undefined && clientid !== '') client.clientid = clientid;
    setText(client, cmd);
    if (password !== undefined && password !== '') client.password = await hashPassword(password);
    ctx.state.clients.set(username, client);
    for (const g of groups) {
      const group = ctx.state.groups.get(g.groupname)!;
      if (!group.clients.some((m) => m.username === username)) group.clients.push({ username, priority: g.priority });
    }
    ctx.changed = true;
  },
  deleteClient(ctx, cmd) {
    const username = need(cmd, 'username');
    ctx.client(username);
    ctx.state.clients.delete(username);
    for (const g of ctx.state.groups.values()) g.clients = g.clients.filter((m) => m.username !== username);
    ctx.kick.add(username);
    ctx.changed = true;
  },
  enableClient(ctx, cmd) {
    const c = ctx.client(need(cmd, 'username'));
    c.disabled = false;
    ctx.changed = true;
  },
  disableClient(ctx, cmd) {
    const c = ctx.client(need(cmd, 'username'));
    c.disabled = true;
    ctx.kick.add(c.username);
    ctx.changed = true;
  },
  getClient(ctx, cmd) {
    return { client: clientJson(ctx.state, ctx.client(need(cmd, 'username'))) };
  },
  listClients(ctx, cmd) {
    return page(cmd, sorted(ctx.state.clients), 'clients', (c) => clientJson(ctx.state, c), (c) => c.username);
  },
  async modifyClient(ctx, cmd) {
    const c = ctx.client(need(cmd, 'username'));
    const clientid = optStr(cmd, 'clientid', 'client id');
    const password = optStr(cmd, 'password', 'password');
    const roles = cmd.roles === undefined ? undefined : ctx.roleList(cmd.roles);
    const groups = cmd.groups === undefined ? undefined : ctx.groupList(cmd.groups);
    if (clientid !== undefined) c.clientid = clientid === '' ? undefined : clientid;
    if (password !== undefined) c.password = password === '' ? undefined : await hashPassword(password);
    setText(c, cmd);
    if (roles) c.roles = roles;
    if (groups) {
      for (const g of ctx.state.groups.values()) g.clients = g.clients.filter((m) => m.username !== c.username);
      for (const g of groups) ctx.state.groups.get(g.groupname)!.clients.push({ username: c.username, priority: g.priority });
    }
    ctx.kick.add(c.username);
    ctx.changed = true;
  },
  setClientId(ctx, cmd) {
    const username = need(cmd, 'username');
    const clientid = optStr(cmd, 'clientid', 'client id');
    const c = ctx.client(username);
    c.clientid = clientid === undefined || clientid === '' ? undefined : clientid;
    ctx.kick.add(username);
    ctx.changed = true;
  },
  async setClientPassword(ctx, cmd) {
    const username = need(cmd, 'username');
    const password = need(cmd, 'password');
    const c = ctx.client(username);
    c.password = await hashPassword(password);
    ctx.changed = true;
  },
  addClientRole(ctx, cmd) {
    const c = ctx.client(need(cmd, 'username'));
    const role = ctx.role(need(cmd, 'rolename'));
    const priority = optInt(cmd, 'priority', -1);
    if (c.roles.some((r) => r.rolename === role.rolename)) return; // already there: no change
    c.roles.push({ rolename: role.rolename, priority });
    sortRoleRefs(c.roles);
    ctx.kick.add(c.username);
    ctx.changed = true;
  },
  removeClientRole(ctx, cmd) {
    const c = ctx.client(need(cmd, 'username'));
    const role = ctx.role(need(cmd, 'rolename'));
    c.roles = c.roles.filter((r) => r.rolename !== role.rolename);
    ctx.kick.add(c.username);
    ctx.changed = true;
  },

  // ---------------------------------------------------------------- groups
  createGroup(ctx, cmd) {
    const groupname = need(cmd, 'groupname');
    if (ctx.state.groups.has(groupname)) fail('Group already exists');
    const roles = cmd.roles === undefined ? [] : ctx.roleList(cmd.roles);
    const g: DynsecGroup = { groupname, roles, clients: [] };
    setText(g, cmd);
    ctx.state.groups.set(groupname, g);
    ctx.changed = true;
  },
  deleteGroup(ctx, cmd) {
    const g = ctx.group(need(cmd, 'groupname'));
    if (ctx.state.anonymousGroup === g.groupname) fail('Deleting the anonymous group is forbidden');
    ctx.kickGroup(g);
    ctx.state.groups.delete(g.groupname);
    ctx.changed = true;
  },
  getGroup(ctx, cmd) {
    return { group: groupJson(ctx.group(need(cmd, 'groupname'))) };
  },
  listGroups(ctx, cmd) {
    return page(cmd, sorted(ctx.state.groups), 'groups', groupJson, (g) => g.groupname);
  },
  modifyGroup(ctx, cmd) {
    const g = ctx.group(need(cmd, 'groupname'));
    const roles = cmd.roles === undefined ? undefined : ctx.roleList(cmd.roles);
    let clients: Array<{ username: string; priority: number }> | undefined;
    if (cmd.clients !== undefined) {
      if (!Array.isArray(cmd.clients)) fail('Invalid/missing clients');
      clients = [];
      for (const m of cmd.clients as unknown[]) {
        if (!isObj(m) || typeof m.username !== 'string') continue;
        if (!ctx.state.clients.has(m.username)) fail('Client not found');
        if (!clients.some((x) => x.username === m.username)) {
          clients.push({ username: m.username, priority: typeof m.priority === 'number' ? Math.trunc(m.priority) : -1 });
        }
      }
    }
    setText(g, cmd);
    ctx.kickGroup(g);
    if (roles) g.roles = roles;
    if (clients) g.clients = clients;
    ctx.kickGroup(g);
    ctx.changed = true;
  },
  addGroupClient(ctx, cmd) {
    const username = need(cmd, 'username');
    const g = ctx.group(need(cmd, 'groupname'));
    ctx.client(username);
    const priority = optInt(cmd, 'priority', -1);
    if (g.clients.some((m) => m.username === username)) fail('Client is already in this group');
    g.clients.push({ username, priority });
    ctx.kick.add(username);
    ctx.changed = true;
  },
  removeGroupClient(ctx, cmd) {
    const username = need(cmd, 'username');
    const g = ctx.group(need(cmd, 'groupname'));
    ctx.client(username);
    if (!g.clients.some((m) => m.username === username)) fail('Client not in group');
    g.clients = g.clients.filter((m) => m.username !== username);
    ctx.kick.add(username);
    ctx.changed = true;
  },
  addGroupRole(ctx, cmd) {
    const g = ctx.group(need(cmd, 'groupname'));
    const role = ctx.role(need(cmd, 'rolename'));
    const priority = optInt(cmd, 'priority', -1);
    if (g.roles.some((r) => r.rolename === role.rolename)) fail('Group is already in this role');
    g.roles.push({ rolename: role.rolename, priority });
    sortRoleRefs(g.roles);
    ctx.kickGroup(g);
    ctx.changed = true;
  },
  removeGroupRole(ctx, cmd) {
    const g = ctx.group(need(cmd, 'groupname'));
    const role = ctx.role(need(cmd, 'rolename'));
    if (!g.roles.some((r) => r.rolename === role.rolename)) fail('Group is not in this role');
    g.roles = g.roles.filter((r) => r.rolename !== role.rolename);
    ctx.kickGroup(g);
    ctx.changed = true;
  },
  setAnonymousGroup(ctx, cmd) {
    const g = ctx.group(need(cmd, 'groupname'));
    ctx.state.anonymousGroup = g.groupname;
    ctx.changed = true;
  },
  getAnonymousGroup(ctx) {
    return { group: { groupname: ctx.state.anonymousGroup ?? '' } };
  },

  // ---------------------------------------------------------------- roles
  createRole(ctx, cmd) {
    const rolename = need(cmd, 'rolename');
    if (ctx.state.roles.has(rolename)) fail('Role already exists');
    const acls = cmd.acls === undefined ? [] : ctx.aclList(cmd.acls);
    const r: DynsecRole = { rolename, acls };
    setText(r, cmd);
    ctx.state.roles.set(rolename, r);
    ctx.changed = true;
  },
  getRole(ctx, cmd) {
    return { role: roleJson(ctx.role(need(cmd, 'rolename'))) };
  },
  listRoles(ctx, cmd) {
    return page(cmd, sorted(ctx.state.roles), 'roles', roleJson, (r) => r.rolename);
  },
  modifyRole(ctx, cmd) {
    const r = ctx.role(need(cmd, 'rolename'));
    const acls = cmd.acls === undefined ? undefined : ctx.aclList(cmd.acls);
    setText(r, cmd);
    if (acls) r.acls = acls;
    ctx.kickRole(r.rolename);
    ctx.changed = true;
  },
  deleteRole(ctx, cmd) {
    const r = ctx.role(need(cmd, 'rolename'));
    ctx.kickRole(r.rolename);
    ctx.state.roles.delete(r.rolename);
    for (const c of ctx.state.clients.values()) c.roles = c.roles.filter((x) => x.rolename !== r.rolename);
    for (const g of ctx.state.groups.values()) g.roles = g.roles.filter((x) => x.rolename !== r.rolename);
    ctx.changed = true;
  },
  addRoleACL(ctx, cmd) {
    const r = ctx.role(need(cmd, 'rolename'));
    if (!isAclType(cmd.acltype)) fail('Invalid/missing acltype');
    const topic = need(cmd, 'topic');
    if (!isValidFilter(topic)) fail('Invalid ACL topic');
    if (r.acls.some((a) => a.acltype === cmd.acltype && a.topic === topic)) fail('ACL with this topic already exists');
    r.acls.push({ acltype: cmd.acltype as DynsecAcl['acltype'], topic, priority: optInt(cmd, 'priority', 0), allow: cmd.allow === true });
    sortAcls(r.acls);
    ctx.kickRole(r.rolename);
    ctx.changed = true;
  },
  removeRoleACL(ctx, cmd) {
    const r = ctx.role(need(cmd, 'rolename'));
    if (!isAclType(cmd.acltype)) fail('Invalid/missing acltype');
    const topic = need(cmd, 'topic');
    const i = r.acls.findIndex((a) => a.acltype === cmd.acltype && a.topic === topic);
    if (i < 0) fail('ACL not found');
    r.acls.splice(i, 1);
    ctx.kickRole(r.rolename);
    ctx.changed = true;
  },
};

export const COMMANDS: readonly string[] = Object.keys(HANDLERS);
void ACL_TYPES;

/** Runs one payload of commands against `state` (modified in place). */
export async function runCommands(state: DynsecState, payload: Buffer | string): Promise<RunResult> {
  const ctx = new CommandContext(state);
  const responses: CommandResponse[] = [];
  let tree: unknown;
  try {
    tree = JSON.parse(payload.toString());
  } catch {
    return { responses: [{ command: 'Unknown command', error: 'Payload not valid JSON' }], changed: false, kick: ctx.kick };
  }
  const commands = isObj(tree) ? tree.commands : undefined;
  if (!Array.isArray(commands)) {
    return { responses: [{ command: 'Unknown command', error: 'Invalid/missing commands' }], changed: false, kick: ctx.kick };
  }
  for (const cmd of commands as unknown[]) {
    if (!isObj(cmd) || typeof cmd.command !== 'string') {
      responses.push({ command: 'Unknown command', error: 'Missing command' });
      continue;
    }
    const name = cmd.command;
    const corr = cmd.correlationData;
    if (corr !== undefined && typeof corr !== 'string') {
      // As the plugin: a bad correlationData ends the processing of the payload.
      responses.push({ command: name, error: 'Invalid correlationData data type.' });
      break;
    }
    const res: CommandResponse = { command: name };
    const handler = Object.prototype.hasOwnProperty.call(HANDLERS, name) ? HANDLERS[name] : undefined;
    if (!handler) {
      res.error = 'Unknown command';
    } else {
      try {
        const data = await handler(ctx, cmd);
        if (data) res.data = data;
      } catch (err) {
        if (!(err instanceof CommandError)) throw err;
        res.error = err.message;
      }
    }
    if (corr !== undefined) res.correlationData = corr;
    responses.push(res);
  }
  return { responses, changed: ctx.changed, kick: ctx.kick };
}
