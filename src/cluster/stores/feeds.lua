-- letta-bridge cluster: feeds (see stores/feeds.rs). KEYS[1] is the feed
-- `feed:<id>` (its record), KEYS[2] the sorted set `feeds` of every feed's
-- id by expiry, KEYS[3] the sorted set of its owner's feeds. Times are in ms.

if mode == 'create' then
  -- Keeps record A[1] of feed A[2], expiring at A[3] (0: never), unless
  -- A[4] feeds are in force, or (A[5] > 0) A[5] of this owner's. Nothing is
  -- evicted. Returns 0 when kept, 1 when all are full, 2 when the owner's
  -- are, 3 when it expired already.
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(A[4]) then return 1 end
  local per_owner = tonumber(A[5]) > 0
  if per_owner then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    if redis.call('ZCARD', KEYS[3]) >= tonumber(A[5]) then return 2 end
  end
  local expires = tonumber(A[3])
  local score = '+inf'
  if expires > 0 then
    if expires <= now then return 3 end
    redis.call('SET', KEYS[1], A[1], 'PX', expires - now)
    score = expires
  else
    redis.call('SET', KEYS[1], A[1])
  end
  redis.call('ZADD', KEYS[2], score, A[2])
  if per_owner then
    redis.call('ZADD', KEYS[3], score, A[2])
    -- An owner's set goes with their last feed.
    if expires > 0 then
      local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
      redis.call('PEXPIREAT', KEYS[3], math.max(tonumber(last[2]), expires))
    end
  end
  return 0
end

return redis.error_reply('unknown mode ' .. tostring(mode))
