-- renew.lua -- the owner extends its lease, or learns it is gone (expired, taken, or given up by a disown
-- this renewal raced): never re-takes it, which would resurrect a feed nobody owns. After a store
-- restart the previous owner re-takes its leases in assert.lua.
-- KEYS: nodes count owner   ARGV: node lease_ms
-- Returns {count, nodes, owner, {}, 0}
local owner = redis.call('GET', KEYS[3])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HLEN', KEYS[1]), owner or '', {}, 0}
