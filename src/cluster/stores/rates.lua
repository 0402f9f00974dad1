-- letta-bridge cluster: per-credential token buckets (see stores/rates.rs).
-- KEYS[1] is a bucket's hash `rate:<key>` (`t` its tokens, `at` when, in
-- ms of Redis's clock, shared by every instance). A: 1 tokens per second,
-- 2 the burst. Answers 0 when a token was taken, else the ms until one is.

if mode == 'take' then
  local rate, burst = tonumber(A[1]), tonumber(A[2])
  local now = now_ms()
  local bucket = redis.call('HMGET', KEYS[1], 't', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  local wait = 0
  if tokens >= 1 then
    tokens = tokens - 1
  else
    wait = math.ceil((1 - tokens) * 1000 / rate)
  end
  redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', now)
  -- Gone once it would be full again: a missing bucket is a full one.
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
  return wait
end
