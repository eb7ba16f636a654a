/**
 * The Lua scripts of the Redis store. Each is registered with ioredis `defineCommand`, so it runs
 * by EVALSHA (EVAL once per connection, when the server does not know it yet). A script runs
 * atomically: the epoch check and the writes it guards cannot be interleaved with another client.
 *
 * Conventions: ARGV[1] is the key prefix (message keys are derived inside the script from the
 * message id in a queue entry); session scripts get the session keys as KEYS in the order
 * `s, sub, q, p, i` (see README.md) and the expected epoch as ARGV[2]. A stale epoch returns the
 * error reply `SKEIN_STALE <current epoch or empty>` before anything is written.
 */

const COMMON = `
local P = ARGV[1]
local function msgid(e) return string.match(e, '^%a|%d*|[^|]*|[^|]*|[^|]*|(.*)$') end
local function decref(id)
  local k = P .. 'm:' .. id
  if redis.call('HINCRBY', k, 'n', -1) <= 0 then redis.call('DEL', k) end
end
`;

/**
 * The phase changes of a queue entry, on the queue hash KEYS[2] and the packet id hash KEYS[3]
 * (needs COMMON): `sent` puts entry `seq` in flight under packet id `id`, `complete` removes the
 * entry in flight under `id`. Each returns 1, or 0 when there was no such entry.
 */
const DELIVERY = `
local function sent(seq, id)
  local e = redis.call('HGET', KEYS[2], seq)
  if not e then return 0 end
  local ph, pid, rest = string.match(e, '^(%a)|(%d*)|(.*)$')
  if pid ~= '' and redis.call('HGET', KEYS[3], pid) == seq then redis.call('HDEL', KEYS[3], pid) end
  redis.call('HSET', KEYS[2], seq, 's|' .. id .. '|' .. rest)
  redis.call('HSET', KEYS[3], id, seq)
  return 1
end
local function complete(id)
  local seq = redis.call('HGET', KEYS[3], id)
  if not seq then return 0 end
  redis.call('HDEL', KEYS[3], id)
  local e = redis.call('HGET', KEYS[2], seq)
  if not e then return 0 end
  redis.call('HDEL', KEYS[2], seq)
  decref(msgid(e))
  return 1
end
`;

/** Epoch check against the session hash `KEYS[1]` and `ARGV[2]`. */
const CHECK = `
local cur = redis.call('HGET', KEYS[1], 'e')
if cur ~= ARGV[2] then return redis.error_reply('SKEIN_STALE ' .. (cur or '')) end
`;

/** The session under KEYS[1..5] as {record, epoch, subs, {seq, entry, blob}..., inbound ids}. */
const SNAPSHOT = `
local function snapshot()
  local raw = redis.call('HGETALL', KEYS[3])
  local entries = {}
  for j = 1, #raw, 2 do
    local e = raw[j + 1]
    entries[#entries + 1] = raw[j]
    entries[#entries + 1] = e
    entries[#entries + 1] = redis.call('HGET', P .. 'm:' .. msgid(e), 'b') or ''
  end
  return {
    redis.call('HGET', KEYS[1], 'r'),
    redis.call('HGET', KEYS[1], 'e'),
    redis.call('HVALS', KEYS[2]),
    entries,
    redis.call('SMEMBERS', KEYS[5]),
  }
end
`;

/** Decrements the message of every entry of the queue KEYS[3] and deletes KEYS[2..5]. */
const CLEAR = `
local function clear()
  local raw = redis.call('HVALS', KEYS[3])
  for j = 1, #raw do decref(msgid(raw[j])) end
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
end
`;

export interface ScriptDef {
  lua: string;
  readOnly?: boolean;
}

export const SCRIPTS = {
  /** KEYS s sub q p i epochCounter index; ARGV P clientId recordJson clean. */
  skeinTake: {
    lua: `${COMMON}${SNAPSHOT}${CLEAR}
local existed = redis.call('EXISTS', KEYS[1]) == 1
local epoch = redis.call('INCR', KEYS[6])
local prev = false
if existed then
  if ARGV[4] == '1' then clear() else prev = snapshot() end
else
  redis.call('HSET', KEYS[1], 'n', 0)
  redis.call('SADD', KEYS[7], ARGV[2])
end
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'e', epoch, 'o', ARGV[5])
return {existed and 1 or 0, epoch, prev}
`,
  },
  /** KEYS s sub q p i; ARGV P. */
  skeinGet: {
    readOnly: true,
    lua: `${COMMON}${SNAPSHOT}
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return snapshot()
`,
  },
  /** KEYS s; ARGV P epoch recordJson. */
  skeinUpdate: {
    lua: `${CHECK}
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'o', ARGV[4])
return 1
`,
  },
  /** KEYS s sub q p i index; ARGV P epoch-or-empty clientId. */
  skeinDelete: {
    lua: `${COMMON}${CLEAR}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] ~= '' then
${CHECK}
end
clear()
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[6], ARGV[3])
return 1
`,
  },
  /** KEYS s sub; ARGV P epoch (filter json)... */
  skeinSubscribe: {
    lua: `${CHECK}
for j = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[j], ARGV[j + 1]) end
return 1
`,
  },
  /** KEYS s sub; ARGV P epoch filter... */
  skeinUnsubscribe: {
    lua: `${CHECK}
for j = 3, #ARGV do redis.call('HDEL', KEYS[2], ARGV[j]) end
return 1
`,
  },
  /** KEYS s q p; ARGV P epoch seq packetId. */
  skeinSent: {
    lua: `${COMMON}${DELIVERY}${CHECK}
return sent(ARGV[3], ARGV[4])
`,
  },
  /** KEYS s q p; ARGV P epoch packetId. */
  skeinReleased: {
    lua: `${CHECK}
local seq = redis.call('HGET', KEYS[3], ARGV[3])
if not seq then return 0 end
local e = redis.call('HGET', KEYS[2], seq)
if not e then return 0 end
redis.call('HSET', KEYS[2], seq, 'r' .. string.sub(e, 2))
return 1
`,
  },
  /** KEYS s q p; ARGV P epoch packetId. */
  skeinComplete: {
    lua: `${COMMON}${DELIVERY}${CHECK}
return complete(ARGV[3])
`,
  },
  /** KEYS s q p; ARGV P epoch then pairs seq packetId: sent, or complete when seq is 0. */
  skeinDeliveries: {
    lua: `${COMMON}${DELIVERY}${CHECK}
for j = 3, #ARGV - 1, 2 do
  if ARGV[j] == '0' then complete(ARGV[j + 1]) else sent(ARGV[j], ARGV[j + 1]) end
end
return 1
`,
  },
  /** KEYS s q p; ARGV P epoch seq... */
  skeinDrop: {
    lua: `${COMMON}${CHECK}
local n = 0
for j = 3, #ARGV do
  local e = redis.call('HGET', KEYS[2], ARGV[j])
  if e then
    local pid = string.match(e, '^%a|(%d*)|')
    if pid ~= '' and redis.call('HGET', KEYS[3], pid) == ARGV[j] then redis.call('HDEL', KEYS[3], pid) end
    redis.call('HDEL', KEYS[2], ARGV[j])
    decref(msgid(e))
    n = n + 1
  end
end
return n
`,
  },
  /** KEYS s i; ARGV P epoch packetId. */
  skeinQos2Add: {
    lua: `${CHECK}
return redis.call('SADD', KEYS[2], ARGV[3])
`,
  },
  /** KEYS s i; ARGV P epoch packetId. */
  skeinQos2Remove: {
    lua: `${CHECK}
return redis.call('SREM', KEYS[2], ARGV[3])
`,
  },
  /**
   * KEYS retained msg [q2-s q2-i] (s q)...;
   * ARGV P blob topic retain('' | set | delete) q2epoch('' when none) q2packetId maxQueued(0 = none) entryTail...
   * Returns {seqs, owners}: the seq of each delivery (-1: no such session) and the node serving
   * that session now (field `o` of the session hash, '' when disconnected).
   */
  skeinCommit: {
    lua: `
local base = 3
if ARGV[5] ~= '' then
  local cur = redis.call('HGET', KEYS[3], 'e')
  if cur ~= ARGV[5] then return redis.error_reply('SKEIN_STALE ' .. (cur or '')) end
  base = 5
end
local maxq = tonumber(ARGV[7]) or 0
local seqs = {}
local owners = {}
local landed = 0
for d = 0, (#KEYS - base + 1) / 2 - 1 do
  local s = KEYS[base + 2 * d]
  if redis.call('EXISTS', s) == 1 and maxq > 0 and redis.call('HLEN', KEYS[base + 2 * d + 1]) >= maxq then
    seqs[d + 1] = -2
    owners[d + 1] = redis.call('HGET', s, 'o') or ''
  elseif redis.call('EXISTS', s) == 1 then
    local seq = redis.call('HINCRBY', s, 'n', 1)
    redis.call('HSET', KEYS[base + 2 * d + 1], seq, 'q||' .. ARGV[8 + d])
    seqs[d + 1] = seq
    owners[d + 1] = redis.call('HGET', s, 'o') or ''
    landed = landed + 1
  else
    seqs[d + 1] = -1
    owners[d + 1] = ''
  end
end
if landed > 0 then
  redis.call('HSET', KEYS[2], 'b', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'n', landed)
end
if ARGV[4] == 'set' then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[2])
elseif ARGV[4] == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[3])
end
if base == 5 then redis.call('SADD', KEYS[4], ARGV[6]) end
return {seqs, owners}
`,
  },
} satisfies Record<string, ScriptDef>;

export type ScriptName = keyof typeof SCRIPTS;
