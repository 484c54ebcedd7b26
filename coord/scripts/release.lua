-- release.lua -- one subscription of node ARGV[1] less; ownership stays (see disown.lua).
-- KEYS: nodes count owner   ARGV: node ctl_channel feed_name
-- A count reaching 0 is announced on subway:demand.
local function demand(event, name, node)
  local t = redis.call('TIME')
  local slash = string.find(name, '/', 1, true)
  local key = string.sub(name, slash + 1)
  redis.call('PUBLISH', 'subway:demand', cjson.encode({event = event, feed = name,
    topic = string.sub(name, 1, slash - 1), key = key ~= '*' and key or cjson.null, node = node,
    ts_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}))
end
-- Returns {count, nodes, owner, {}, mine}
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]); mine = 0 end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
local was = tonumber(redis.call('GET', KEYS[2]) or '0')
if total > 0 then redis.call('SET', KEYS[2], total) else redis.call('DEL', KEYS[2]) end
if total == 0 and was > 0 then demand('release', ARGV[3], ARGV[1]) end
local nodes = redis.call('HLEN', KEYS[1])
if mine == 0 then redis.call('PUBLISH', ARGV[2], 'leave ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, redis.call('GET', KEYS[3]) or '', {}, mine}
