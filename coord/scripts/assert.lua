-- assert.lua -- after the store came back (maybe empty), a node re-states its exact count and ownership.
-- KEYS: nodes count owner offsets   ARGV: node local lease_ms ctl_channel own feed_name
-- A count re-stated from 0 (the store came back empty) is announced again on subway:demand.
--#include common.inc
-- Returns {count, nodes, owner, offsets(when taking ownership), local, demand JSON or nil}
local mine = tonumber(ARGV[2])
if mine > 0 then redis.call('HSET', KEYS[1], ARGV[1], mine) else redis.call('HDEL', KEYS[1], ARGV[1]) end
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[6], ARGV[1])
local owner = redis.call('GET', KEYS[3])
local offsets = {}
-- Only the previous owner re-takes a lost lease here, so a store restart does
-- not move feeds; others claim it later if nobody does (claim.lua).
if not owner and ARGV[5] == '1' then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
  owner = ARGV[1]
  offsets = redis.call('HGETALL', KEYS[4])
end
local nodes = redis.call('HLEN', KEYS[1])
if mine > 0 then redis.call('PUBLISH', ARGV[4], 'join ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, owner or '', offsets, mine, event}
