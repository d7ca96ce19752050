package redisqueue

import "github.com/redis/go-redis/v9"

// appendScript performs one webhook.Op in its room's partition.
//
// KEYS: 1 stream, 2 sequence hash, 3 membership hash (or a dummy key of
// the slot), 4 Once key (or dummy), 5 the member's node's rooms index (or
// dummy).
// ARGV: 1 room, 2 has set (0/1), 3 enter (0/1), 4 member, 5 edge, 6 event,
// 7 what the member's loss emits (JSON {"e":..,"g":..}), 8 Once TTL ms,
// 9 has Once (0/1), 10 set name.
// It returns the number of events added.
var appendScript = redis.NewScript(`
local room = ARGV[1]
if ARGV[9] == '1' then
  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[8]) then return 0 end
end
local n = 0
local function emit(b)
  if b == '' then return end
  local seq = redis.call('HINCRBY', KEYS[2], room, 1)
  redis.call('XADD', KEYS[1], '*', 'room', room, 'seq', seq, 'ev', b)
  n = n + 1
end
if ARGV[2] == '0' then
  emit(ARGV[6])
  return n
end
if ARGV[3] == '1' then
  if redis.call('HSETNX', KEYS[3], ARGV[4], ARGV[7]) == 0 then return 0 end
  redis.call('SADD', KEYS[5], room)
  if redis.call('HLEN', KEYS[3]) == 1 then emit(ARGV[5]) end
  emit(ARGV[6])
else
  if redis.call('HDEL', KEYS[3], ARGV[4]) == 0 then return 0 end
  if ARGV[10] == 'nodes' then redis.call('SREM', KEYS[5], room) end
  emit(ARGV[6])
  if redis.call('HLEN', KEYS[3]) == 0 then
    emit(ARGV[5])
    -- The room's life ended: its next one numbers from 1 again.
    if ARGV[10] == 'nodes' then redis.call('HDEL', KEYS[2], room) end
  end
end
return n
`)

// forgetScript ends what a lost node held in one room: its tracks, then
// its part of the room, each emitting what it stored at its Enter.
//
// KEYS: 1 stream, 2 sequence hash, 3 tracks hash, 4 nodes hash, 5 the
// node's rooms index.
// ARGV: 1 room, 2 node, 3 now (Unix ms).
var forgetScript = redis.NewScript(`
local room, prefix = ARGV[1], ARGV[2] .. '|'
local n = 0
local function emit(b)
  if b == nil or b == '' then return end
  local seq = redis.call('HINCRBY', KEYS[2], room, 1)
  redis.call('XADD', KEYS[1], '*', 'room', room, 'seq', seq, 'ev', b, 'at', ARGV[3])
  n = n + 1
end
for k = 3, 4 do
  local all = redis.call('HGETALL', KEYS[k])
  for i = 1, #all, 2 do
    local m = all[i]
    if string.sub(m, 1, #prefix) == prefix then
      redis.call('HDEL', KEYS[k], m)
      local l = cjson.decode(all[i + 1])
      emit(l.e)
      if redis.call('HLEN', KEYS[k]) == 0 then
        emit(l.g)
        if k == 4 then redis.call('HDEL', KEYS[2], room) end
      end
    end
  end
end
redis.call('SREM', KEYS[5], room)
return n
`)

// renewScript renews the lease KEYS[1] if ARGV[1] holds it (PX ARGV[2]);
// it returns 1 when it does.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)
