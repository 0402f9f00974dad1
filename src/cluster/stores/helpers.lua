-- letta-bridge cluster: what the store scripts share (idempotency.lua and
-- tickets.lua are each run after this file, as one script).
--
-- ARGV[1] is the mode, ARGV[2] the key prefix; A holds the mode's own
-- arguments, A[1] being ARGV[3]. KEYS are the mode's keys.

local mode = ARGV[1]
local A = {}
for i = 3, #ARGV do A[i - 2] = ARGV[i] end

-- Redis's clock in milliseconds (the same for every instance).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Makes room for one more member of the sorted set KEYS[2], bounded to
-- `max`: members scored at or below `stale` are gone already and leave
-- the set; beyond that the lowest-scored go, each with its key deleted.
local function make_room(max, stale)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', stale)
  local over = redis.call('ZCARD', KEYS[2]) - max + 1
  if over > 0 then
    local oldest = redis.call('ZPOPMIN', KEYS[2], over)
    for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
  end
end

