-- release.lua -- one subscription of node ARGV[1] less; ownership stays (see disown.lua).
-- KEYS: nodes count owner   ARGV: node ctl_channel feed_name
-- A count reaching 0 is announced on subway:demand.
--#include common.inc
-- Returns {count, nodes, owner, {}, mine, demand JSON or nil}
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]); mine = 0 end
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[3], ARGV[1])
local nodes = redis.call('HLEN', KEYS[1])
if mine == 0 then redis.call('PUBLISH', ARGV[2], 'leave ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, redis.call('GET', KEYS[3]) or '', {}, mine, event}
