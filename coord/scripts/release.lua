-- release.lua -- one subscription of node ARGV[1] less; ownership stays (see disown.lua).
-- KEYS: nodes count owner   ARGV: node ctl_channel
-- Returns {count, nodes, owner, {}, mine}
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]); mine = 0 end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
if total > 0 then redis.call('SET', KEYS[2], total) else redis.call('DEL', KEYS[2]) end
local nodes = redis.call('HLEN', KEYS[1])
if mine == 0 then redis.call('PUBLISH', ARGV[2], 'leave ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, redis.call('GET', KEYS[3]) or '', {}, mine}
