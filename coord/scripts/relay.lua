-- relay.lua -- the owner publishes a batch and records where a successor resumes, in one step.
-- KEYS: offsets   ARGV: relay_channel data partition offset [partition offset ...]
redis.call('PUBLISH', ARGV[1], ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
