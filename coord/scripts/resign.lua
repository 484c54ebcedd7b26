-- resign.lua -- a stopping owner hands the feed over at once: records where it stopped, frees the lease, tells the relays.
-- KEYS: nodes count owner offsets sessions   ARGV: node inc relay_channel marker partition offset [...]
-- The relays claim the feed as soon as they see the marker, and resume from
-- these offsets. Refused (returns 0) unless this session owns the feed.
--#include common.inc
if redis.call('GET', KEYS[3]) ~= token(ARGV[1], ARGV[2]) then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
