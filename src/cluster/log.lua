-- letta-bridge cluster: every step that touches the shared event log, as
-- one script so that each runs atomically and in one total order.
--
-- Keys (P = "lb:{<cluster>}:", one hash slot):
--   P.."meta"          hash: epoch, seq, bytes, last:<node> (highest append id),
--                      primary (the run_id of the Redis the log trusts), gate and
--                      gate_since (the run_id being checked, since when)
--   P.."checked"       set: the instances whose mirror checked the log since
--                      its primary changed
--   P.."events"        stream: id <seq>-0 (seqs without gaps); fields e k r a v g n q t i d
--   P.."sizes"         list: the data size of each entry of events, oldest first
--   P.."rt:"..device   hash: node, gen, online, online_since, offline_since,
--                      last_pong, info (the runtime's registration as JSON)
--   P.."devices"       set of every device id seen
--   P.."node-rts:"..n  set of the devices instance n holds
--   P.."nodes"         zset: instance -> lease expiry (engine ms)
--
-- ARGV[1] is the mode, ARGV[2] the prefix P; the rest depends on the mode.
-- Keys are derived from the prefix (one slot: the braces are the hash tag).

local mode = ARGV[1]
local P = ARGV[2]
local META = P .. 'meta'
local EVENTS = P .. 'events'
local SIZES = P .. 'sizes'
local CHECKED = P .. 'checked'

-- How long new entries wait at most, after the log's primary changed, for
-- every live instance's mirror to check the log.
local GATE_MS = 3000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The Redis process this script runs on: a failover or a restart changes it.
local function server()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end

-- The epoch, creating the log's meta when it is missing (a new or emptied
-- engine): `candidate` becomes the epoch.
local function epoch(candidate)
  local e = redis.call('HGET', META, 'epoch')
  if e then return e end
  -- Entries without a meta are orphans of a partly lost engine.
  redis.call('DEL', EVENTS, SIZES, CHECKED)
  redis.call('HSET', META, 'epoch', candidate, 'seq', 0, 'bytes', 0, 'primary', server())
  return candidate
end

-- True when the log may take new entries. A log written on another Redis
-- process (a replica promoted by a failover, a restart from a file) may
-- miss its newest entries, and new entries would then take ids that
-- subscribers already saw with other content. So after such a change no
-- entry is added until each live instance's mirror has compared the log
-- with what it read (mode `meta`: one that read further starts a new
-- epoch, `bump`), or GATE_MS passed (an instance that cannot check).
local function open(now)
  local here = server()
  local m = redis.call('HMGET', META, 'primary', 'gate', 'gate_since')
  if m[1] == here then return true end
  if m[2] ~= here then
    redis.call('HSET', META, 'gate', here, 'gate_since', now)
    redis.call('DEL', CHECKED)
    m[3] = now
  end
  if now - tonumber(m[3]) < GATE_MS then
    for _, node in ipairs(redis.call('ZRANGEBYSCORE', P .. 'nodes', now, '+inf')) do
      if redis.call('SISMEMBER', CHECKED, node) == 0 then return false end
    end
  end
  redis.call('HSET', META, 'primary', here)
  redis.call('HDEL', META, 'gate', 'gate_since')
  redis.call('DEL', CHECKED)
  return true
end

-- Drops the oldest entries beyond the limits, in batches: between two
-- trims the log may hold up to `slack` entries (or 1/64 of the bytes) over
-- its limits, so that an append costs two O(1) reads in steady state. The
-- sizes of the entries come from the SIZES list, oldest first, one number
-- per entry, never from the entries themselves: reading entries into Lua
-- cost ~4.5 µs of Redis CPU per event (bench cluster-append, 11.4 against
-- 7.0 µs without trimming). Age is checked only when `by_age` (on each
-- lease renewal; each instance's ring applies its own age limit anyway).
local function trim(max_events, max_bytes, max_age_ms, now, by_age)
  local len = redis.call('XLEN', EVENTS)
  local bytes = tonumber(redis.call('HGET', META, 'bytes') or '0')
  local slack = math.max(64, math.floor(max_events / 64))
  if len == 0 then return end
  if not by_age and len <= max_events + slack and bytes <= max_bytes + math.floor(max_bytes / 64) then return end
  -- Oldest first: over the count, or over the bytes (the newest entry stays).
  local drop, freed, more = 0, 0, true
  while more and drop < len - 1 do
    local sizes = redis.call('LRANGE', SIZES, drop, drop + 255)
    if #sizes == 0 then break end
    for _, size in ipairs(sizes) do
      if drop >= len - 1 or (len - drop <= max_events and bytes - freed <= max_bytes) then
        more = false
        break
      end
      drop, freed = drop + 1, freed + tonumber(size)
    end
  end
  -- The count limit holds even if SIZES were short (then bytes are under-counted).
  drop = math.max(drop, len - max_events)
  local first = tonumber(string.match(redis.call('XRANGE', EVENTS, '-', '+', 'COUNT', 1)[1][1], '^(%d+)-'))
  -- Then what is older than the age limit.
  while by_age and drop < len - 1 do
    local batch = redis.call('XRANGE', EVENTS, (first + drop) .. '-0', '+', 'COUNT', 64)
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      local fields, t = entry[2], now
      for j = 1, #fields, 2 do
        if fields[j] == 't' then t = tonumber(fields[j + 1]) end
      end
      if now - t <= max_age_ms or drop >= len - 1 then
        by_age = false
        break
      end
      freed = freed + tonumber(redis.call('LINDEX', SIZES, drop) or '0')
      drop = drop + 1
    end
  end
  if drop <= 0 then return end
  redis.call('XTRIM', EVENTS, 'MINID', (first + drop) .. '-0')
  redis.call('LTRIM', SIZES, drop, -1)
  redis.call('HINCRBY', META, 'bytes', -freed)
end

-- Appends one event; returns its seq. An empty agent, conversation or
-- reply-to is left out (every mirror reads an absent field as empty, this
-- version and the ones before): every instance parses every field of every
-- entry, and most events answer no request.
local function add(ep, kind, runtime, agent, conv, gen, node, reply, id, data, now)
  local seq = redis.call('HINCRBY', META, 'seq', 1)
  local f = {'e', ep, 'k', kind, 'r', runtime}
  if agent ~= '' then f[#f + 1] = 'a'; f[#f + 1] = agent end
  if conv ~= '' then f[#f + 1] = 'v'; f[#f + 1] = conv end
  f[#f + 1] = 'g'; f[#f + 1] = gen; f[#f + 1] = 'n'; f[#f + 1] = node
  if reply ~= '' then f[#f + 1] = 'q'; f[#f + 1] = reply end
  f[#f + 1] = 't'; f[#f + 1] = now; f[#f + 1] = 'i'; f[#f + 1] = id; f[#f + 1] = 'd'; f[#f + 1] = data
  redis.call('XADD', EVENTS, seq .. '-0', unpack(f))
  redis.call('HINCRBY', META, 'bytes', #data)
  redis.call('RPUSH', SIZES, #data)
  return seq
end

-- True when `node` holds `runtime`'s connection `gen`, or when the runtime
-- has no record at all (the engine lost its data: the first writer claims
-- it). A runtime recorded offline is held by nobody: late writes of a lost
-- instance are refused.
local function holds(runtime, node, gen)
  local rt = P .. 'rt:' .. runtime
  local owner = redis.call('HMGET', rt, 'node', 'gen')
  if redis.call('EXISTS', rt) == 0 then
    redis.call('HSET', rt, 'node', node, 'gen', gen, 'online', 1)
    redis.call('SADD', P .. 'devices', runtime)
    redis.call('SADD', P .. 'node-rts:' .. node, runtime)
    return true
  end
  return owner[1] == node and owner[2] == gen
end

if mode == 'append' then
  -- ARGV: 3 node, 4 candidate epoch, 5 max events, 6 max bytes, 7 max age ms,
  -- 8 first append id, then 9 fields per entry:
  -- op (e: event, on: runtime_online, off: runtime_offline), runtime, gen,
  -- kind, agent, conversation, reply-to, data, info (on: registration JSON).
  -- Returns one number per entry: its seq, 0 when fenced (another instance
  -- or connection holds the runtime now), -1 for an append id already applied.
  -- Fails with GATED while the log waits for the mirrors' check (`open`).
  local node = ARGV[3]
  local ep = epoch(ARGV[4])
  local max_events, max_bytes, max_age = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local first = tonumber(ARGV[8])
  local last = tonumber(redis.call('HGET', META, 'last:' .. node) or '0')
  local now = now_ms()
  if not open(now) then
    return redis.error_reply('GATED the log waits for every instance to check it after its primary changed')
  end
  local out = {}
  local n = first
  for i = 9, #ARGV, 9 do
    local op, runtime, gen = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local kind, agent, conv, reply, data, info = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
    local id = node .. ':' .. n
    if n <= last then
      table.insert(out, -1)
    elseif op == 'on' then
      local rt = P .. 'rt:' .. runtime
      local old = redis.call('HGET', rt, 'node')
      if old then redis.call('SREM', P .. 'node-rts:' .. old, runtime) end
      redis.call('HSET', rt, 'node', node, 'gen', gen, 'online', 1, 'online_since', now, 'info', info)
      redis.call('HDEL', rt, 'offline_since', 'last_pong')
      redis.call('SADD', P .. 'devices', runtime)
      redis.call('SADD', P .. 'node-rts:' .. node, runtime)
      table.insert(out, add(ep, kind, runtime, agent, conv, gen, node, reply, id, data, now))
    elseif not holds(runtime, node, gen) then
      table.insert(out, 0)
    else
      if op == 'off' then
        local rt = P .. 'rt:' .. runtime
        redis.call('HSET', rt, 'online', 0, 'offline_since', now)
        redis.call('HDEL', rt, 'node', 'gen', 'last_pong')
        redis.call('SREM', P .. 'node-rts:' .. node, runtime)
      end
      table.insert(out, add(ep, kind, runtime, agent, conv, gen, node, reply, id, data, now))
    end
    n = n + 1
  end
  if n - 1 > last then redis.call('HSET', META, 'last:' .. node, n - 1) end
  trim(max_events, max_bytes, max_age, now, false)
  return out
end

if mode == 'reap' then
  -- ARGV: 3 candidate epoch, 4 max events, 5 max bytes, 6 max age ms,
  -- 7 this instance, 8 an instance to reap now whatever its lease ("" for
  -- none: this instance starting again under the same id).
  -- Every instance whose lease expired (and ARGV[8]) loses its runtimes:
  -- each still held by it goes offline with reason instance_lost.
  -- Returns the reaped instances.
  -- While the log waits for the mirrors' check (`open`): reaps nothing,
  -- and fails with GATED when asked to reap ARGV[8] (retried at start).
  local ep = epoch(ARGV[3])
  local max_events, max_bytes, max_age = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local now = now_ms()
  if not open(now) then
    if ARGV[8] ~= '' then return redis.error_reply('GATED the log waits for its check after its primary changed') end
    return {}
  end
  local lost = redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', now)
  if ARGV[8] ~= '' then table.insert(lost, ARGV[8]) end
  for _, node in ipairs(lost) do
    local held = redis.call('SMEMBERS', P .. 'node-rts:' .. node)
    for _, runtime in ipairs(held) do
      local rt = P .. 'rt:' .. runtime
      local owner = redis.call('HMGET', rt, 'node', 'gen')
      if owner[1] == node then
        redis.call('HSET', rt, 'online', 0, 'offline_since', now)
        redis.call('HDEL', rt, 'node', 'gen', 'last_pong')
        local data = cjson.encode({ type = 'runtime_offline', runtime_id = runtime, reason = 'instance_lost' })
        add(ep, 'runtime_offline', runtime, '', '', owner[2], node, '', ARGV[7] .. ':reap', data, now)
      end
    end
    redis.call('DEL', P .. 'node-rts:' .. node, P .. 'node:' .. node)
    if node ~= ARGV[7] then redis.call('ZREM', P .. 'nodes', node) end
  end
  trim(max_events, max_bytes, max_age, now, true)
  return lost
end

if mode == 'forget' then
  -- ARGV: 3 ms a runtime may stay offline before it is forgotten.
  -- Bounds the registry under a churn of one-off devices. Returns how many
  -- were forgotten.
  local now, limit, gone = now_ms(), tonumber(ARGV[3]), 0
  for _, runtime in ipairs(redis.call('SMEMBERS', P .. 'devices')) do
    local rt = P .. 'rt:' .. runtime
    local state = redis.call('HMGET', rt, 'online', 'offline_since')
    if state[1] ~= '1' and (not state[2] or now - tonumber(state[2]) >= limit) then
      redis.call('DEL', rt)
      redis.call('SREM', P .. 'devices', runtime)
      gone = gone + 1
    end
  end
  return gone
end

if mode == 'heartbeat' then
  -- ARGV: 3 this instance, 4 lease ms, 5 instance info JSON.
  -- Returns {engine now ms, the instances holding a lease}.
  local now = now_ms()
  local ttl = tonumber(ARGV[4])
  redis.call('SET', P .. 'node:' .. ARGV[3], ARGV[5], 'PX', ttl)
  redis.call('ZADD', P .. 'nodes', now + ttl, ARGV[3])
  return { now, redis.call('ZRANGEBYSCORE', P .. 'nodes', now, '+inf') }
end

if mode == 'leave' then
  -- ARGV: 3 this instance. A clean shutdown: its lease goes at once.
  redis.call('DEL', P .. 'node:' .. ARGV[3])
  redis.call('ZREM', P .. 'nodes', ARGV[3])
  return 1
end

if mode == 'meta' then
  -- ARGV: 3 candidate epoch, 4 this instance, 5 its mirror's epoch, 6 the
  -- seq its mirror read last. Returns {epoch, seq}, creating the meta of an
  -- emptied engine. After the log's primary changed, a mirror that did not
  -- read further than the log in its epoch counts as having checked it
  -- (`open`); one that did leaves the gate closed and bumps the epoch.
  local ep = epoch(ARGV[3])
  local seq = tonumber(redis.call('HGET', META, 'seq'))
  if redis.call('HGET', META, 'primary') ~= server() then
    if not (ARGV[5] == ep and seq < tonumber(ARGV[6])) then
      redis.call('SADD', CHECKED, ARGV[4])
    end
    open(now_ms())
  end
  return { ep, seq }
end

if mode == 'bump' then
  -- ARGV: 3 the epoch seen, 4 a new epoch. The log lost its newest events
  -- (a lagging replica, a partial AOF): rather than reuse their ids for
  -- other content, it starts again under a new epoch. Compare-and-set, so
  -- that one instance does it. Returns the epoch in force.
  -- A fresh log has no ids to protect: its primary is this Redis.
  local e = redis.call('HGET', META, 'epoch')
  if e ~= ARGV[3] then return e or ARGV[4] end
  redis.call('DEL', EVENTS, SIZES, CHECKED)
  redis.call('HSET', META, 'epoch', ARGV[4], 'seq', 0, 'bytes', 0, 'primary', server())
  redis.call('HDEL', META, 'gate', 'gate_since')
  return ARGV[4]
end

if mode == 'pong' then
  -- ARGV: 3 runtime, 4 node, 5 gen, 6 unix ms. Fenced: only the holder.
  local rt = P .. 'rt:' .. ARGV[3]
  local owner = redis.call('HMGET', rt, 'node', 'gen')
  if owner[1] == ARGV[4] and owner[2] == ARGV[5] then
    redis.call('HSET', rt, 'last_pong', ARGV[6])
  end
  return 1
end

if mode == 'register' then
  -- ARGV: 3 device, 4 candidate connection id, 5 registration JSON, 6 ttl ms.
  -- Returns the device's connection id (stable while it registers again
  -- within the ttl).
  local byDevice = P .. 'devconn:' .. ARGV[3]
  local id = redis.call('GET', byDevice) or ARGV[4]
  redis.call('SET', byDevice, id, 'PX', ARGV[6])
  redis.call('SET', P .. 'conn:' .. id, ARGV[5], 'PX', ARGV[6])
  return id
end

return redis.error_reply('unknown mode ' .. tostring(mode))
