-- relay.lua -- the owner publishes a batch and records where a successor resumes, in one step; fenced by the owner token.
-- KEYS: nodes count owner offsets sessions   ARGV: node inc relay_channel data partition offset [...]
-- A stale owner (its lease expired or taken: a pause, a cut from Redis) is
-- refused here, so its late batches never reach the relays. Returns 1, or 0
-- when refused.
--#include common.inc
if redis.call('GET', KEYS[3]) ~= token(ARGV[1], ARGV[2]) then return 0 end
redis.call('PUBLISH', ARGV[3], ARGV[4])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
return 1
