-- reap.lua -- subtracts a dead session's subscriptions from one feed and frees (or passes on) the feed's lease if it held it.
-- KEYS: nodes count owner offsets sessions   ARGV: node dead_inc ctl_channel feed_name successor_inc
-- Fenced by the session: a count a newer incarnation of the node wrote stays.
-- successor_inc (a node starting a new session in the same process, which
-- still holds what the old one read) takes the lease over with its
-- remaining time; '' frees it, offsets kept, for any node to claim.
-- A count the reaping takes to 0 is announced on subway:demand.
--#include common.inc
-- Returns {count after, demand JSON or nil}.
if redis.call('HGET', KEYS[5], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('PUBLISH', ARGV[3], 'leave ' .. ARGV[1] .. ' ' .. redis.call('HLEN', KEYS[1]))
end
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[4], ARGV[1])
if redis.call('GET', KEYS[3]) == token(ARGV[1], ARGV[2]) then
  local left = redis.call('PTTL', KEYS[3])
  if ARGV[5] ~= '' and left > 0 then
    redis.call('SET', KEYS[3], token(ARGV[1], ARGV[5]), 'PX', left)
  else
    redis.call('DEL', KEYS[3])
  end
end
return {total, event}
