-- letta-bridge cluster: webhooks (see webhooks/mod.rs). Run after
-- stores/helpers.lua (mode, A, now_ms). Keys derive from the prefix P
-- (one slot): `hooks` (id -> HookRecord JSON), `hooks-off` (id -> why it
-- is disabled), `hooks-of:<owner>` (a set of ids), per hook `wh:<id>:q`
-- (pending delivery ids, oldest first; the head is being attempted),
-- `wh:<id>:d` (id -> DeliveryRecord JSON) and `wh:<id>:r` (ids on record,
-- oldest first); `wh-lease` (the webhooks leader), `wh-cursor` (`epoch`,
-- `seq`: the last event of the log the leader read).
-- Modes that change deliveries are fenced: they fail unless A[1] still
-- holds the lease, so a leader that lost it writes nothing.

local P = ARGV[2]
local function hook_key(id, part) return P .. 'wh:' .. id .. ':' .. part end

local function fenced()
  if redis.call('GET', P .. 'wh-lease') ~= A[1] then
    return redis.error_reply('fenced: not the webhooks leader')
  end
  return nil
end

-- Sets `field` of delivery `id` of hook `hook` with `f(record)`; false if none.
local function change(hook, id, f)
  local json = redis.call('HGET', hook_key(hook, 'd'), id)
  if not json then return false end
  local d = cjson.decode(json)
  f(d)
  redis.call('HSET', hook_key(hook, 'd'), id, cjson.encode(d))
  return true
end

local function null_or(value, convert)
  if value == '' then return cjson.null end
  return convert(value)
end

if mode == 'lease' then
  -- Takes or renews the leader's lease for A[2] ms as A[1].
  local holder = redis.call('GET', P .. 'wh-lease')
  if holder == A[1] then
    redis.call('PEXPIRE', P .. 'wh-lease', A[2])
    return 1
  end
  if holder then return 0 end
  redis.call('SET', P .. 'wh-lease', A[1], 'PX', A[2])
  return 1
end

if mode == 'release' then
  if redis.call('GET', P .. 'wh-lease') == A[1] then redis.call('DEL', P .. 'wh-lease') end
  return 1
end

if mode == 'create' then
  -- A: 1 id, 2 record, 3 owner, 4 most hooks, 5 most of this owner (0: no limit).
  if redis.call('HLEN', P .. 'hooks') >= tonumber(A[4]) then return 'full' end
  local max = tonumber(A[5])
  if max > 0 and redis.call('SCARD', P .. 'hooks-of:' .. A[3]) >= max then return 'full-owner' end
  redis.call('HSET', P .. 'hooks', A[1], A[2])
  redis.call('SADD', P .. 'hooks-of:' .. A[3], A[1])
  return 'ok'
end

if mode == 'delete' then
  -- A: 1 id, 2 its owner.
  if redis.call('HDEL', P .. 'hooks', A[1]) == 0 then return 0 end
  redis.call('SREM', P .. 'hooks-of:' .. A[2], A[1])
  redis.call('HDEL', P .. 'hooks-off', A[1])
  redis.call('DEL', hook_key(A[1], 'q'), hook_key(A[1], 'd'), hook_key(A[1], 'r'))
  return 1
end

if mode == 'list' then
  -- Every hook: record, why disabled ('' if not), pending count.
  local out = {}
  local all = redis.call('HGETALL', P .. 'hooks')
  for i = 1, #all, 2 do
    out[#out + 1] = all[i + 1]
    out[#out + 1] = redis.call('HGET', P .. 'hooks-off', all[i]) or ''
    out[#out + 1] = tostring(redis.call('LLEN', hook_key(all[i], 'q')))
  end
  return out
end

if mode == 'deliveries' then
  -- Hook A[1]'s deliveries on record, newest first.
  local out = {}
  local ids = redis.call('LRANGE', hook_key(A[1], 'r'), 0, -1)
  for i = #ids, 1, -1 do
    local json = redis.call('HGET', hook_key(A[1], 'd'), ids[i])
    if json then out[#out + 1] = json end
  end
  return out
end

if mode == 'enqueue' then
  -- Queues deliveries and moves the leader's cursor. A: 1 holder, 2 epoch,
  -- 3 seq, 4 most pending per hook, 5 most on record, then (hook, id,
  -- record) triples. A full queue drops its oldest pending delivery (the
  -- one being attempted included). Returns how many were dropped.
  local err = fenced()
  if err then return err end
  local max_pending, max_recorded, dropped = tonumber(A[4]), tonumber(A[5]), 0
  for i = 6, #A, 3 do
    local hook, id = A[i], A[i + 1]
    if redis.call('HEXISTS', P .. 'hooks', hook) == 1 and redis.call('HEXISTS', P .. 'hooks-off', hook) == 0 then
      redis.call('HSET', hook_key(hook, 'd'), id, A[i + 2])
      redis.call('RPUSH', hook_key(hook, 'r'), id)
      redis.call('RPUSH', hook_key(hook, 'q'), id)
      while redis.call('LLEN', hook_key(hook, 'q')) > max_pending do
        local oldest = redis.call('LPOP', hook_key(hook, 'q'))
        change(hook, oldest, function(d) d.status = 'dropped' end)
        dropped = dropped + 1
      end
      -- Forgets the oldest deliveries on record beyond the bound that are not pending.
      local over, j = redis.call('LLEN', hook_key(hook, 'r')) - max_recorded, 0
      while over > 0 do
        local old = redis.call('LINDEX', hook_key(hook, 'r'), j)
        if not old then break end
        local json = redis.call('HGET', hook_key(hook, 'd'), old)
        if not json or cjson.decode(json).status ~= 'pending' then
          redis.call('LREM', hook_key(hook, 'r'), 1, old)
          redis.call('HDEL', hook_key(hook, 'd'), old)
          over = over - 1
        else
          j = j + 1
        end
      end
    end
  end
  redis.call('HSET', P .. 'wh-cursor', 'epoch', A[2], 'seq', A[3])
  return dropped
end

if mode == 'attempted' then
  -- An attempt failed; the next is due at A[7]. A: 2 hook, 3 id, 4 attempts,
  -- 5 last status ('' none), 6 last error ('' none).
  local err = fenced()
  if err then return err end
  return change(A[2], A[3], function(d)
    d.attempts = tonumber(A[4])
    d.last_status = null_or(A[5], tonumber)
    d.last_error = null_or(A[6], tostring)
    d.next_at = tonumber(A[7])
  end) and 1 or 0
end

if mode == 'done' then
  -- A delivery ended: A[7] `delivered` or `failed`; A[8] why the hook is
  -- disabled now ('' if it is not). A 2-6 as for `attempted`.
  local err = fenced()
  if err then return err end
  change(A[2], A[3], function(d)
    d.attempts = tonumber(A[4])
    d.last_status = null_or(A[5], tonumber)
    d.last_error = null_or(A[6], tostring)
    d.status = A[7]
  end)
  redis.call('LREM', hook_key(A[2], 'q'), 1, A[3])
  if A[8] ~= '' and redis.call('HEXISTS', P .. 'hooks', A[2]) == 1 then
    redis.call('HSET', P .. 'hooks-off', A[2], A[8])
  end
  return 1
end

if mode == 'disable' then
  -- Disables hook A[2] for A[3] (its maker's token expired or was revoked).
  local err = fenced()
  if err then return err end
  if redis.call('HEXISTS', P .. 'hooks', A[2]) == 1 then redis.call('HSET', P .. 'hooks-off', A[2], A[3]) end
  return 1
end

if mode == 'redeliver' then
  -- Queues delivery A[2] of hook A[1] again and enables the hook.
  local json = redis.call('HGET', hook_key(A[1], 'd'), A[2])
  if not json then return 'unknown' end
  local d = cjson.decode(json)
  if d.status == 'pending' then return 'pending' end
  d.status = 'pending'
  d.next_at = 0
  redis.call('HSET', hook_key(A[1], 'd'), A[2], cjson.encode(d))
  redis.call('RPUSH', hook_key(A[1], 'q'), A[2])
  redis.call('HDEL', P .. 'hooks-off', A[1])
  return 'queued'
end

return redis.error_reply('unknown mode ' .. tostring(mode))
