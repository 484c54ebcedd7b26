-- renew.lua -- the owner extends its lease; re-takes a lease the store lost; reports a lease someone else holds.
-- KEYS: nodes count owner   ARGV: node lease_ms
-- Returns {count, nodes, owner, {}, 0}
local owner = redis.call('GET', KEYS[3])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
elseif not owner then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  owner = ARGV[1]
end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HLEN', KEYS[1]), owner, {}, 0}
