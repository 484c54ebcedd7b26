-- claim.lua -- takes ownership if nobody holds the lease; else (announce) asks the owner for a sync marker.
-- KEYS: nodes count owner offsets sessions node_key   ARGV: node inc lease_ms ctl_channel announce
-- Returns {count, nodes, owner token, offsets(when this session owns), 0}
--#include common.inc
if not live(KEYS[6], ARGV[2]) then return stale() end
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local nodes = redis.call('HLEN', KEYS[1])
local owner = redis.call('GET', KEYS[3])
local me = token(ARGV[1], ARGV[2])
if not owner then
  redis.call('SET', KEYS[3], me, 'PX', ARGV[3])
  return {total, nodes, me, redis.call('HGETALL', KEYS[4]), 0}
end
if owner == me then
  redis.call('PEXPIRE', KEYS[3], ARGV[3])   -- the caller counts a full lease from its call
  return {total, nodes, me, redis.call('HGETALL', KEYS[4]), 0}
elseif ARGV[5] == '1' then
  redis.call('PUBLISH', ARGV[4], 'join ' .. ARGV[1] .. ' ' .. nodes)
end
return {total, nodes, owner, {}, 0}
