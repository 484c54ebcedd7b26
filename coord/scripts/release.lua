-- release.lua -- one subscription of node ARGV[1] less; ownership stays (see disown.lua).
-- KEYS: nodes count owner offsets sessions node_key   ARGV: node inc ctl_channel feed_name
-- Only the incarnation that wrote the node's count releases from it: an older
-- one's release, arriving late, changes nothing. A count reaching 0 is
-- announced on subway:demand.
--#include common.inc
if not live(KEYS[6], ARGV[2]) then return stale() end
-- Returns {count, nodes, owner token, {}, mine, demand JSON or nil}
local mine = 0
if redis.call('HGET', KEYS[5], ARGV[1]) == ARGV[2] then
  mine = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
  if mine <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[5], ARGV[1])
    mine = 0
    redis.call('PUBLISH', ARGV[3], 'leave ' .. ARGV[1] .. ' ' .. redis.call('HLEN', KEYS[1]))
  end
end
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[4], ARGV[1])
return {total, redis.call('HLEN', KEYS[1]), redis.call('GET', KEYS[3]) or '', {}, mine, event}
