-- claim.lua -- takes ownership if nobody holds the lease; else (announce) asks the owner for a sync marker.
-- KEYS: nodes count owner offsets   ARGV: node lease_ms ctl_channel announce
-- Returns {count, nodes, owner, offsets(when taking ownership), 0}
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
local nodes = redis.call('HLEN', KEYS[1])
local owner = redis.call('GET', KEYS[3])
if not owner then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  return {total, nodes, ARGV[1], redis.call('HGETALL', KEYS[4]), 0}
end
if owner ~= ARGV[1] and ARGV[4] == '1' then
  redis.call('PUBLISH', ARGV[3], 'join ' .. ARGV[1] .. ' ' .. nodes)
end
return {total, nodes, owner, {}, 0}
