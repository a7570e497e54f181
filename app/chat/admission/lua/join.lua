housekeep()
if redis.call('ZCARD', waiting) >= tonumber(ARGV[5]) then
  return state(0, 3)
end
local id = redis.call('INCR', seq)
redis.call('ZADD', waiting, ARGV[4], member(id))
redis.call('ZADD', alive, now + lease_s, member(id))
housekeep()
return state(id)
