-- reap.lua -- subtracts a dead node's subscriptions from one feed and frees the feed's lease if it held it.
-- KEYS: nodes count owner   ARGV: dead_node ctl_channel feed_name
-- A count the reaping takes to 0 is announced on subway:demand.
local function demand(event, name, node)
  local t = redis.call('TIME')
  local slash = string.find(name, '/', 1, true)
  local key = string.sub(name, slash + 1)
  redis.call('PUBLISH', 'subway:demand', cjson.encode({event = event, feed = name,
    topic = string.sub(name, 1, slash - 1), key = key ~= '*' and key or cjson.null, node = node,
    ts_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}))
end
-- Returns the feed's count after.
if redis.call('HGET', KEYS[1], ARGV[1]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[2], 'leave ' .. ARGV[1] .. ' ' .. redis.call('HLEN', KEYS[1]))
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
local was = tonumber(redis.call('GET', KEYS[2]) or '0')
if total > 0 then redis.call('SET', KEYS[2], total) else redis.call('DEL', KEYS[2]) end
if total == 0 and was > 0 then demand('release', ARGV[3], ARGV[1]) end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return total
