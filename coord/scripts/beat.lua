-- beat.lua -- a node's heartbeat: refreshes its liveness hash only while it still belongs to this incarnation.
-- KEYS: node_key   ARGV: inc ttl_ms field value [field value ...]
-- Returns 1, or 0 when the key expired (maybe the node was reaped while it
-- was paused or cut off) or a newer incarnation wrote it: the caller starts
-- a new session and re-asserts what it holds.
if redis.call('HGET', KEYS[1], 'incarnation') ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
