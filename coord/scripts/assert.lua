-- assert.lua -- a node starting a session (the store came back, maybe empty, or it was reaped while alive) re-states its count and ownership.
-- KEYS: nodes count owner offsets sessions node_key   ARGV: node inc local lease_ms ctl_channel own feed_name
-- A count re-stated from 0 (the store came back empty) is announced again on subway:demand.
--#include common.inc
if not live(KEYS[6], ARGV[2]) then return stale() end
-- Returns {count, nodes, owner token, offsets(when this session owns), local, demand JSON or nil}
local mine = tonumber(ARGV[3])
if mine > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], mine)
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
end
local total, was = store_count(KEYS[1], KEYS[2])
local event = announce(total, was, ARGV[7], ARGV[1])
local owner = redis.call('GET', KEYS[3])
local me = token(ARGV[1], ARGV[2])
local offsets = {}
-- Only the previous owner re-takes a lost lease here (or one an earlier
-- session of this node still holds), so a store restart does not move
-- feeds; others claim it later if nobody does (claim.lua).
if ARGV[6] == '1' and owner ~= me and (not owner or token_node(owner) == ARGV[1]) then
  redis.call('SET', KEYS[3], me, 'PX', ARGV[4])
  owner = me
elseif owner == me then
  redis.call('PEXPIRE', KEYS[3], ARGV[4])   -- the caller counts a full lease from its call
end
if owner == me then offsets = redis.call('HGETALL', KEYS[4]) end
local nodes = redis.call('HLEN', KEYS[1])
if mine > 0 then redis.call('PUBLISH', ARGV[5], 'join ' .. ARGV[1] .. ' ' .. nodes) end
return {total, nodes, owner or '', offsets, mine, event}
