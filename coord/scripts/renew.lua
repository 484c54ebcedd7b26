-- renew.lua -- the owner extends its lease, or learns it is gone (expired, taken, or given up by a disown
-- this renewal raced): never re-takes it, which would resurrect a feed nobody owns. After a store
-- restart the previous owner re-takes its leases in assert.lua.
-- KEYS: nodes count owner offsets sessions   ARGV: node inc lease_ms
-- The caller counts its lease from when it sent this call, so it stops acting
-- as owner before the lease can run out here (README, "Sessions and fencing").
-- Returns {count, nodes, owner token, {}, 0}
--#include common.inc
local owner = redis.call('GET', KEYS[3])
if owner == token(ARGV[1], ARGV[2]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HLEN', KEYS[1]), owner or '', {}, 0}
