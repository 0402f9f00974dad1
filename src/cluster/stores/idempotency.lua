-- letta-bridge cluster: Idempotency-Key answers (see stores/idempotency.rs).
-- KEYS[1] is the key's hash `idem:<sha-1 of the key>`, KEYS[2] (where
-- used) the sorted set `idem-keys`. Times are in ms.

if mode == 'claim' then
  -- Claims a key: `first`, `mismatch`, `wait`, or `done` with the answer.
  -- A: 1 fingerprint, 2 claim id, 3 how long a running claim holds the
  -- key, 4 the most keys, 5 the longest a key lives (window plus that
  -- hold: entries of `idem-keys` older than it are stale).
  local h = redis.call('HMGET', KEYS[1], 'fp', 'state', 'status', 'ct', 'body')
  if not h[1] then
    local now = now_ms()
    make_room(tonumber(A[4]), now - tonumber(A[5]))
    redis.call('HSET', KEYS[1], 'fp', A[1], 'state', 'running', 'claim', A[2])
    redis.call('PEXPIRE', KEYS[1], A[3])
    redis.call('ZADD', KEYS[2], now, KEYS[1])
    redis.call('PEXPIRE', KEYS[2], A[5])
    return {'first'}
  end
  if h[1] ~= A[1] then return {'mismatch'} end
  if h[2] == 'done' then return {'done', h[3], h[4], h[5]} end
  return {'wait'}
end

if mode == 'keep' then
  -- Stores the answer of a claim, if it still holds the key.
  -- A: 1 claim id, 2 status, 3 content type, 4 body, 5 window.
  if redis.call('HGET', KEYS[1], 'claim') ~= A[1] then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'done', 'status', A[2], 'ct', A[3], 'body', A[4])
  redis.call('PEXPIRE', KEYS[1], A[5])
  return 1
end

if mode == 'release' then
  -- Frees a key whose claim gave up without an answer. A: 1 claim id.
  if redis.call('HGET', KEYS[1], 'claim') == A[1] and redis.call('HGET', KEYS[1], 'state') == 'running' then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], KEYS[1])
  end
  return 1
end

return redis.error_reply('unknown mode ' .. tostring(mode))
