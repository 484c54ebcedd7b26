-- acquire.lua -- one more subscription of node ARGV[1]; takes ownership when the feed has none.
-- KEYS: nodes count owner offsets   ARGV: node lease_ms ctl_channel feed_name
-- A count going 0 -> 1 is announced on subway:demand (see README, "Demand events").
--#include common.inc
-- Returns {count, nodes, owner, offsets(flat partition/offset list, only when taking ownership), mine, demand JSON or nil}
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[4], ARGV[1])
local owner = redis.call('GET', KEYS[3])
local offsets = {}
if not owner then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  owner = ARGV[1]
  offsets = redis.call('HGETALL', KEYS[4])
end
local nodes = redis.call('HLEN', KEYS[1])
if mine == 1 then redis.call('PUBLISH', ARGV[3], 'join ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, owner, offsets, mine, event}
