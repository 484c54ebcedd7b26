-- acquire.lua -- one more subscription of node ARGV[1]; takes ownership when the feed has none.
-- KEYS: nodes count owner offsets   ARGV: node lease_ms ctl_channel feed_name
-- A count going 0 -> 1 is announced on subway:demand (see README, "Demand events").
local function demand(event, name, node)
  local t = redis.call('TIME')
  local slash = string.find(name, '/', 1, true)
  local key = string.sub(name, slash + 1)
  redis.call('PUBLISH', 'subway:demand', cjson.encode({event = event, feed = name,
    topic = string.sub(name, 1, slash - 1), key = key ~= '*' and key or cjson.null, node = node,
    ts_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}))
end
-- Returns {count, nodes, owner, offsets(flat partition/offset list, only when taking ownership), mine}
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
redis.call('SET', KEYS[2], total)
if total == 1 and mine == 1 then demand('demand', ARGV[4], ARGV[1]) end
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
