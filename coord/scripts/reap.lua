-- reap.lua -- subtracts a dead node's subscriptions from one feed and frees the feed's lease if it held it.
-- KEYS: nodes count owner   ARGV: dead_node ctl_channel feed_name
-- A count the reaping takes to 0 is announced on subway:demand.
--#include common.inc
-- Returns {count after, demand JSON or nil}.
if redis.call('HGET', KEYS[1], ARGV[1]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[2], 'leave ' .. ARGV[1] .. ' ' .. redis.call('HLEN', KEYS[1]))
end
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[3], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return {total, event}
