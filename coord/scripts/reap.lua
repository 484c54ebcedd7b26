-- reap.lua -- subtracts a dead session's subscriptions from one feed and frees (or passes on) the feed's lease if it held it.
-- KEYS: nodes count owner offsets sessions node_key   ARGV: node dead_inc ctl_channel feed_name successor
-- Fenced by the session: a count a newer incarnation of the node wrote stays.
-- The lease, if the dead session holds it: successor an incarnation (the
-- node's own session start, same process, which still has what the old one
-- read) takes it over with its remaining time; '-' (the node's own start in
-- a new process, which has not) frees it now, offsets kept; '' (another
-- node reaping) leaves it to run out: the session may still act on it until
-- its own count of the lease ends, which is before the store's.
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
  if ARGV[5] == '-' or left <= 0 then
    redis.call('DEL', KEYS[3])
  elseif ARGV[5] ~= '' then
    redis.call('SET', KEYS[3], token(ARGV[1], ARGV[5]), 'PX', left)
  end
end
return {total, event}
