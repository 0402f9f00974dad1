-- letta-bridge cluster: turns that outlive a request (see stores/turns.rs).
-- KEYS[1] is a turn's hash `turn:<id>` (`p` its principal, `r` its
-- record, `s` its position once finished), KEYS[2] the sorted set `turns`
-- of finished turns by position, KEYS[3] the hash `turns-meta` (`epoch`,
-- `seq`: the last position given). Times are in ms.

-- The store's epoch, set to A[5] when there is none yet.
local function epoch_of()
  local epoch = redis.call('HGET', KEYS[3], 'epoch')
  if not epoch then
    epoch = A[5]
    redis.call('HSET', KEYS[3], 'epoch', epoch)
  end
  return epoch
end

if mode == 'start' then
  -- Records a running turn for A[3] ms (A: 1 principal, 2 record), unless
  -- the turn is recorded already (it finished first).
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
  redis.call('HSET', KEYS[1], 'p', A[1], 'r', A[2])
  redis.call('PEXPIRE', KEYS[1], A[3])
  return 1
end

if mode == 'finish' then
  -- Records a finished turn at the next position, kept A[3] ms, within A[4]
  -- finished turns (the earliest finished go first). A: 1 principal, 2
  -- record, 5 an epoch for a store without one.
  epoch_of()
  local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
  make_room(tonumber(A[4]), -1)
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'p', A[1], 'r', A[2], 's', seq)
  redis.call('PEXPIRE', KEYS[1], A[3])
  redis.call('ZADD', KEYS[2], seq, KEYS[1])
  return seq
end

if mode == 'list' then
  -- Finished turns of principal A[1] ('' for everyone's), newest first:
  -- without a cursor (A[2] = '') the newest A[4]; else the first A[4] after
  -- position A[3] of epoch A[2] (of another epoch: from the earliest kept).
  -- Returns the epoch, the next position, then the records.
  local epoch = epoch_of()
  local next = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
  local limit = tonumber(A[4])
  local function take(key)
    local h = redis.call('HMGET', key, 'p', 'r', 's')
    if not h[2] or not h[3] then
      redis.call('ZREM', KEYS[2], key)
      return nil
    end
    if A[1] ~= '' and h[1] ~= A[1] then return nil end
    return h
  end
  local out = {epoch, ''}
  if A[2] == '' then
    for _, key in ipairs(redis.call('ZREVRANGE', KEYS[2], 0, -1)) do
      if #out - 2 >= limit then break end
      local h = take(key)
      if h then out[#out + 1] = h[2] end
    end
  else
    local from = 0
    if A[2] == epoch then from = tonumber(A[3]) end
    if from > next then next = from end
    local page = {}
    for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. from, '+inf')) do
      if #page >= limit then break end
      local h = take(key)
      if h then page[#page + 1] = h end
    end
    if #page == limit and limit > 0 then next = tonumber(page[#page][3]) end
    for i = #page, 1, -1 do out[#out + 1] = page[i][2] end
  end
  out[2] = string.format('%d', next)
  return out
end

return redis.error_reply('unknown mode ' .. tostring(mode))
