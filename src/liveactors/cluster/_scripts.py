"""The Lua scripts of the cluster: each change that must be atomic is one script.

Conversation scripts touch only that conversation's keys (one hash slot); lease scripts only
the cluster-wide ones. Times come from the server (``TIME``), so workers' clocks do not have to
agree. Every write an owner makes for a conversation carries its fencing token and is refused
when the conversation's record holds a newer one.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ADOPT", "CLAIM", "COMMIT", "RELEASE", "RENEW", "SPAWN", "SUBMIT"]

_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: KEYS: the conversation's keys (meta, in, ev, ans, handle, tx).
#: ARGV: config JSON. Returns 1, or 0 when the name is in use.
SPAWN: Final = (
    """
local st = redis.call('HGET', KEYS[1], 'state')
if st and st ~= 'stopped' and st ~= 'failed' then return 0 end
"""
    + _NOW
    + """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6])
redis.call('HSET', KEYS[1], 'state', 'pending', 'config', ARGV[1], 'created', now,
    'seq', 0, 'turn', 1, 'open', 0, 'fence', 0, 'mode', 'unknown', 'started', 0)
return 1
"""
)

#: KEYS: meta, in, ev. ARGV: command JSON, "stop" or "", inbox channel prefix, conversation
#: name, seconds to keep a finished conversation's record, the longest command a notice
#: carries.
#: Returns {1, id, seq} (seq: the last event written before it), {2} when a stop ended a
#: conversation no worker had taken and that had no input (it ends at once, with its
#: ConversationClosed), {0, state} when it takes no more input, {-1} when it is unknown.
#: The owner's notice is ``<previous input id>\n<id>\n<command or "">\n<name>`` (the meta
#: field ``in`` keeps the last input id): an owner whose last input is the previous one takes
#: the command from the notice, without reading the stream.
SUBMIT: Final = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {-1} end
if st == 'stopping' or st == 'stopped' or st == 'failed' then return {0, st} end
if ARGV[2] == 'stop' and st == 'pending' and redis.call('XLEN', KEYS[2]) == 0 then
  local seq = tonumber(redis.call('HGET', KEYS[1], 'seq')) + 1
  local turn = tonumber(redis.call('HGET', KEYS[1], 'turn'))
  local event = cjson.encode({type = 'ConversationClosed', conversation = ARGV[4], seq = seq,
      turn = turn})
  redis.call('XADD', KEYS[3], seq .. '-1', 'e', event, 'a', '')
  redis.call('HSET', KEYS[1], 'state', 'stopped', 'seq', seq)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
  return {2}
end
local prev = redis.call('HGET', KEYS[1], 'in') or '0-0'
local id = redis.call('XADD', KEYS[2], '*', 'c', ARGV[1])
redis.call('HSET', KEYS[1], 'in', id)
if ARGV[2] == 'stop' then redis.call('HSET', KEYS[1], 'state', 'stopping') end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' then
  local command = ARGV[1]
  if #command > tonumber(ARGV[6]) then command = '' end
  local notice = prev .. '\\n' .. id .. '\\n' .. command .. '\\n' .. ARGV[4]
  redis.call('PUBLISH', ARGV[3] .. owner, notice)
end
return {1, id, redis.call('HGET', KEYS[1], 'seq')}
"""

#: KEYS: leases, owners, fence. ARGV: worker, lease ms, cluster cap (0: none), at most how
#: many, "1" to take orphans too ("0": only conversations waiting for a worker).
#: Returns {name1, fence1, name2, fence2, ...}: conversations waiting or orphaned, now leased.
CLAIM: Final = (
    _NOW
    + """
local free = tonumber(ARGV[4])
local cap = tonumber(ARGV[3])
if cap > 0 then
  free = math.min(free, cap - redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'))
end
if free <= 0 then return {} end
local names
if ARGV[5] == '1' then
  names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, free)
else
  names = redis.call('ZRANGEBYSCORE', KEYS[1], 0, 0, 'LIMIT', 0, free)
end
local out = {}
for _, n in ipairs(names) do
  local f = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), n)
  redis.call('HSET', KEYS[2], n, ARGV[1] .. ' ' .. f)
  out[#out + 1] = n
  out[#out + 1] = tostring(f)
end
return out
"""
)

#: KEYS: leases, owners, workers. ARGV: worker, lease ms, then name, fence pairs.
#: Renews the worker's heartbeat and each lease it still holds; returns the names it lost.
RENEW: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
local lost = {}
for i = 3, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] .. ' ' .. ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""
)

#: KEYS: leases, owners. ARGV: name, "<worker> <fence>", how, wake channel, delay ms. How:
#: "orphan" (another worker may take it now), "retry" (after the delay: its connection kept
#: failing here), "remove" (it ended). Returns 1 if the lease was still this one's.
RELEASE: Final = (
    """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[3] == 'orphan' then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  redis.call('PUBLISH', ARGV[4], ARGV[1])
elseif ARGV[3] == 'retry' then
"""
    + _NOW.strip()
    + """
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
"""
)

#: KEYS: the conversation's keys. ARGV: worker, fence.
#: Takes the conversation over (its record now carries this fence) and returns what the new
#: owner carries on from: {1, meta pairs, input entries, answer pairs, {handle, saved at},
#: transcript}; {0} when a newer owner took it already, {-1} when it ended or is unknown.
ADOPT: Final = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'stopped' or st == 'failed' then return {-1} end
if tonumber(ARGV[2]) <= tonumber(redis.call('HGET', KEYS[1], 'fence') or '0') then return {0} end
redis.call('HSET', KEYS[1], 'fence', ARGV[2], 'owner', ARGV[1])
if st == 'pending' then redis.call('HSET', KEYS[1], 'state', 'running') end
return {1, redis.call('HGETALL', KEYS[1]), redis.call('XRANGE', KEYS[2], '-', '+'),
    redis.call('HGETALL', KEYS[4]), redis.call('HMGET', KEYS[5], 'h', 't'),
    redis.call('LRANGE', KEYS[6], 0, -1)}
"""

#: KEYS: the conversation's keys. ARGV: fence, events cap, state JSON, batch number, then (id,
#: event JSON, answered input id or "") per event. Writes the events and the state in one
#: step; returns 0 (and writes nothing) when the conversation's record carries another fence.
#: Idempotent: a batch sent again (its reply was lost) is recognised by its fence and number
#: and not applied twice (returns 1).
#:
#: State JSON: seq, turn, open, mode, started (always); handle, saved (seconds), ttl (ms);
#: trim (the oldest input id still needed: older entries go, and their answers); answered
#: ({id: text}); seen ([id]); tx ([history JSON]); tx_limit; final ("stopped" / "failed").
COMMIT: Final = """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
local batch = ARGV[1] .. ':' .. ARGV[4]
if redis.call('HGET', KEYS[1], 'batch') == batch then return 1 end
redis.call('HSET', KEYS[1], 'batch', batch)
local d = cjson.decode(ARGV[3])
for i = 5, #ARGV, 3 do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], ARGV[i], 'e', ARGV[i + 1], 'a', ARGV[i + 2])
end
redis.call('HSET', KEYS[1], 'seq', d.seq, 'turn', d.turn, 'open', d.open, 'mode', d.mode,
    'started', d.started)
if d.handle then
  local stored = redis.call('HGET', KEYS[5], 't')
  if not stored or tonumber(stored) <= tonumber(d.saved) then
    redis.call('HSET', KEYS[5], 'h', d.handle, 't', d.saved)
  end
  redis.call('PEXPIRE', KEYS[5], d.ttl)
end
if d.answered then
  for id, text in pairs(d.answered) do redis.call('HSET', KEYS[4], 'a:' .. id, text) end
end
if d.seen then
  for _, id in ipairs(d.seen) do redis.call('HSET', KEYS[4], 's:' .. id, 1) end
end
if d.trim then
  redis.call('XTRIM', KEYS[2], 'MINID', d.trim)
  local function older(id)
    local a1, a2 = string.match(id, '(%d+)-(%d+)')
    local b1, b2 = string.match(d.trim, '(%d+)-(%d+)')
    a1, a2, b1, b2 = tonumber(a1), tonumber(a2), tonumber(b1), tonumber(b2)
    return a1 < b1 or (a1 == b1 and a2 < b2)
  end
  for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
    if older(string.sub(field, 3)) then redis.call('HDEL', KEYS[4], field) end
  end
end
if d.tx then
  for _, entry in ipairs(d.tx) do redis.call('RPUSH', KEYS[6], entry) end
  redis.call('LTRIM', KEYS[6], -tonumber(d.tx_limit), -1)
end
if d.final then
  redis.call('HSET', KEYS[1], 'state', d.final, 'owner', '')
  redis.call('DEL', KEYS[2], KEYS[4], KEYS[6])
  redis.call('EXPIRE', KEYS[1], d.retain)
  redis.call('EXPIRE', KEYS[3], d.retain)
end
return 1
"""
