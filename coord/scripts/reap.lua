-- reap.lua -- subtracts a dead node's subscriptions from one feed and frees the feed's lease if it held it.
-- KEYS: nodes count owner   ARGV: dead_node ctl_channel
-- Returns the feed's count after.
if redis.call('HGET', KEYS[1], ARGV[1]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[2], 'leave ' .. ARGV[1] .. ' ' .. redis.call('HLEN', KEYS[1]))
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
if total > 0 then redis.call('SET', KEYS[2], total) else redis.call('DEL', KEYS[2]) end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return total
