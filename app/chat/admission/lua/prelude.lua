-- Redis: one sorted set of waiting tickets by score, members named by a zero-padded sequence number
-- so that equal scores keep arrival order; the slots in service as a sorted set by lease expiry, with
-- their start times beside; each waiting ticket's own deadline, renewed by its worker's polls. Any
-- call first drops what dead workers left and fills free slots from the head, so a ticket of a busy
-- worker is admitted by whichever worker acts first.
-- Shared by every script (prepended to each): keys, arguments, housekeeping, the state a call returns.
local waiting, alive, active, started = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local capacity_key, samples, seq = KEYS[5], KEYS[6], KEYS[7]
local now, lease_s, default_capacity = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local function member(id)
  return string.format('%015d', id)
end

local function capacity()
  return tonumber(redis.call('GET', capacity_key) or default_capacity)
end

local function housekeep()
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', active, '-inf', now)) do
    redis.call('ZREM', active, m)
    redis.call('HDEL', started, m)
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', now)) do
    redis.call('ZREM', alive, m)
    redis.call('ZREM', waiting, m)
  end
  local free = capacity() - redis.call('ZCARD', active)
  if free > 0 then
    for _, m in ipairs(redis.call('ZRANGE', waiting, 0, free - 1)) do
      redis.call('ZREM', waiting, m)
      redis.call('ZREM', alive, m)
      redis.call('ZADD', active, now + lease_s, m)
      redis.call('HSET', started, m, ARGV[1])
    end
  end
end

local function state(id, status)
  local position = 0
  if status == nil then
    status = 0
    if redis.call('ZSCORE', active, member(id)) then
      status = 2
    else
      local rank = redis.call('ZRANK', waiting, member(id))
      if rank then
        status, position = 1, rank + 1
      end
    end
  end
  return {id, status, position, redis.call('ZCARD', waiting), capacity(), redis.call('HVALS', started),
          redis.call('LRANGE', samples, 0, -1)}
end
