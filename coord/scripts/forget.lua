-- forget.lua -- after its feeds were reaped, drops a dead session from the registry and the indexes, unless the node came back.
-- KEYS: subway:nodes node_feeds_key topic_index_key [...]   ARGV: node dead_inc feed [feed ...] (one per topic index key)
-- A node that started a new session meanwhile re-registered (subway:nodes
-- holds its new incarnation): its index entries are its own again and stay.
-- Returns 1 when forgotten, 0 when left alone.
local reg = redis.call('HGET', KEYS[1], ARGV[1])
if reg and reg ~= ARGV[2] then return 0 end
for i = 3, #KEYS do redis.call('SREM', KEYS[i], ARGV[1] .. ' ' .. ARGV[i]) end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
