local m = member(tonumber(ARGV[4]))
redis.call('ZREM', waiting, m)
redis.call('ZREM', alive, m)
redis.call('ZREM', active, m)
redis.call('HDEL', started, m)
housekeep()
return 1
