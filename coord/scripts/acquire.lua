-- acquire.lua -- one more subscription of node ARGV[1]; takes ownership when the feed has none.
-- KEYS: nodes count owner offsets   ARGV: node lease_ms ctl_channel
-- Returns {count, nodes, owner, offsets(flat partition/offset list, only when taking ownership), mine}
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
redis.call('SET', KEYS[2], total)
local owner = redis.call('GET', KEYS[3])
local offsets = {}
if not owner then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
  owner = ARGV[1]
  offsets = redis.call('HGETALL', KEYS[4])
end
local nodes = redis.call('HLEN', KEYS[1])
if mine == 1 then redis.call('PUBLISH', ARGV[3], 'join ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, owner, offsets, mine}
