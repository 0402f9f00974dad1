-- letta-bridge cluster: stream tickets (see stores/tickets.rs). KEYS[1] is
-- the ticket `ticket:<sha-1 of the ticket>`, holding `-` while unused and
-- then its holder's id; KEYS[2] the sorted set `tickets` of unheld tickets
-- by expiry. Times are in ms.

if mode == 'issue' then
  -- Issues a ticket, unused for A[1] ms, within A[2] unheld tickets (the
  -- soonest to expire go first, as in memory); A[3] is the longest an
  -- unheld ticket lives.
  local now = now_ms()
  make_room(tonumber(A[2]), now)
  redis.call('SET', KEYS[1], '-', 'PX', A[1])
  redis.call('ZADD', KEYS[2], now + tonumber(A[1]), KEYS[1])
  redis.call('PEXPIRE', KEYS[2], A[3])
  return 1
end

if mode == 'open' then
  -- Opens a stream with a ticket for holder A[1], held for A[2] ms: the
  -- earlier holder (`-` when unused), or nil when the ticket is unknown or
  -- expired. A held ticket is not counted in `tickets`.
  local earlier = redis.call('GET', KEYS[1])
  if not earlier then return false end
  redis.call('SET', KEYS[1], A[1], 'PX', A[2])
  redis.call('ZREM', KEYS[2], KEYS[1])
  return earlier
end

if mode == 'keep' then
  -- Keeps holder A[1]'s hold alive for A[2] ms; 0 once another holds it.
  if redis.call('GET', KEYS[1]) ~= A[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], A[2])
  return 1
end

if mode == 'end_hold' then
  -- Starts a released ticket's grace of A[2] ms (if A[1] still holds it):
  -- unheld again, it counts in `tickets` until it expires; A[3] as in issue.
  if redis.call('GET', KEYS[1]) ~= A[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], A[2])
  redis.call('ZADD', KEYS[2], now_ms() + tonumber(A[2]), KEYS[1])
  redis.call('PEXPIRE', KEYS[2], A[3])
  return 1
end

return redis.error_reply('unknown mode ' .. tostring(mode))
