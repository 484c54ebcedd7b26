-- assert.lua -- after the store came back (maybe empty), a node re-states its exact count and ownership.
-- KEYS: nodes count owner offsets   ARGV: node local lease_ms ctl_channel own feed_name
-- A count re-stated from 0 (the store came back empty) is announced again on subway:demand.
local function demand(event, name, node)
  local t = redis.call('TIME')
  local slash = string.find(name, '/', 1, true)
  local key = string.sub(name, slash + 1)
  redis.call('PUBLISH', 'subway:demand', cjson.encode({event = event, feed = name,
    topic = string.sub(name, 1, slash - 1), key = key ~= '*' and key or cjson.null, node = node,
    ts_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}))
end
-- Returns {count, nodes, owner, offsets(when taking ownership), local}
local mine = tonumber(ARGV[2])
if mine > 0 then redis.call('HSET', KEYS[1], ARGV[1], mine) else redis.call('HDEL', KEYS[1], ARGV[1]) end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
local was = tonumber(redis.call('GET', KEYS[2]) or '0')
if total > 0 then redis.call('SET', KEYS[2], total) else redis.call('DEL', KEYS[2]) end
if was == 0 and total > 0 then demand('demand', ARGV[6], ARGV[1]) end
if was > 0 and total == 0 then demand('release', ARGV[6], ARGV[1]) end
local owner = redis.call('GET', KEYS[3])
local offsets = {}
-- Only the previous owner re-takes a lost lease here, so a store restart does
-- not move feeds; others claim it later if nobody does (claim.lua).
if not owner and ARGV[5] == '1' then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
  owner = ARGV[1]
  offsets = redis.call('HGETALL', KEYS[4])
end
local nodes = redis.call('HLEN', KEYS[1])
if mine > 0 then redis.call('PUBLISH', ARGV[4], 'join ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, owner or '', offsets, mine}
