-- acquire.lua -- one more subscription of node ARGV[1]; takes ownership when the feed has none.
-- KEYS: nodes count owner offsets sessions node_key   ARGV: node inc lease_ms ctl_channel feed_name
-- A count going 0 -> 1 is announced on subway:demand (see README, "Demand events").
--#include common.inc
if not live(KEYS[6], ARGV[2]) then return stale() end
-- Returns {count, nodes, owner token, offsets(flat partition/offset list, when this session owns), mine, demand JSON or nil}
adopt(KEYS[1], KEYS[5], ARGV[1], ARGV[2])
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[5], ARGV[1])
local owner = redis.call('GET', KEYS[3])
local offsets = {}
if not owner then
  owner = token(ARGV[1], ARGV[2])
  redis.call('SET', KEYS[3], owner, 'PX', ARGV[3])
elseif owner == token(ARGV[1], ARGV[2]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[3])   -- the caller counts a full lease from its call
end
-- Owning after the call, however it came to (a lease handed on by a
-- session start carries no offsets of its own): where to resume.
if owner == token(ARGV[1], ARGV[2]) then offsets = redis.call('HGETALL', KEYS[4]) end
local nodes = redis.call('HLEN', KEYS[1])
if mine == 1 then redis.call('PUBLISH', ARGV[4], 'join ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, owner, offsets, mine, event}
