-- disown.lua -- the owner gives the feed up after its linger, only if the cluster-wide count is still zero.
-- KEYS: nodes count owner offsets sessions   ARGV: node inc
-- Returns {count, nodes, owner token after, {}, 0}
--#include common.inc
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local owner = redis.call('GET', KEYS[3])
if owner == token(ARGV[1], ARGV[2]) and total == 0 then
  redis.call('DEL', KEYS[3], KEYS[4])
  owner = ''
end
return {total, redis.call('HLEN', KEYS[1]), owner or '', {}, 0}
