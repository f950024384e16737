package redisbroker

import (
	"encoding/hex"
	"hash/fnv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Key layout. Every key of a channel carries the channel name as its hash
// tag ({channel}; for a name holding a "}", a hash of it, see tagged), so
// all of a channel's keys live in one Redis Cluster slot and one script may
// touch them together:
//
//	<prefix>:{<channel>}:meta        hash: e = epoch, o = newest offset,
//	                                 x = last expiry renewal (unix ms), d = ids exists,
//	                                 r = replication id of the primary that wrote it,
//	                                 s = "<unix ms> <id>": when this server last read its id (not replicated)
//	<prefix>:{<channel>}:stream      stream: p = "<offset>\n<entry>", where entry is
//	                                 "<event id>[\x1f<origin>]\n<unix ns>\n<data>", the end
//	                                 of the pub/sub payload (see appendEntry); entries
//	                                 written before this layout have o, i, t, d, g
//	                                 (offset, id, unix ns, data, origin), which
//	                                 History still reads
//	<prefix>:{<channel>}:ids         sorted set: event id -> offset, for the
//	                                 ids still in the stream
//	<prefix>:{<channel>}:pub         the pub/sub channel hubs subscribe to
//	<prefix>:jti:<jti>               a connection token already used
//
// A channel's keys expire together, between HistoryTTL and 1.25 HistoryTTL
// after its last publication (see publishScript).
//
// A channel's epoch also changes when its history was written by the
// primary that the server the scripts run on replaced in a failover:
// Redis replicates asynchronously, so a promoted replica may lack the last
// publications, and would hand their offsets out again to new events,
// which clients that saw the lost ones would skip as already seen. Field
// r holds the replication id of the server that last wrote the channel
// (INFO replication, master_replid); a promoted replica keeps its former
// primary's id as master_replid2. When r equals the running server's
// master_replid2, the scripts start a new epoch, as when the history is
// missing: every failover does this to the channels it finds, even one
// that lost nothing, and their clients get recovered=false once. Any
// other r (a server restarted from its own AOF or RDB, which takes a new
// replication id; a channel written before field r existed) keeps the
// epoch and takes the running server's id. Not detected: a channel left
// untouched through two failovers in a row, and writes lost by a restart
// (AOF with appendfsync everysec can lose the last second); and nothing
// is detected where ACLs refuse INFO to the broker's user (r stays empty).
//
// INFO costs Redis more than the rest of a publication's commands, so the
// scripts ask it at most once a second per channel: after asking, a
// script notes in field s "<unix ms> <id>" without replicating it or writing
// it to the AOF (redis.set_repl), and while s is under a second old and
// names the id in field r, r is the running server's id. A promoted
// replica has no field s, or one a second old, and asks INFO. One gap:
// a replica's full synchronisation copies field s as it stands, so a
// replica promoted within a second (by its own clock) of a full
// synchronisation keeps the epoch.

// replicationIDs starts both scripts: replIDs() returns the running
// server's master_replid and master_replid2, or empty strings where INFO
// is refused. It asks INFO at most once per call, and only when a channel
// with a history is touched whose field s (see above) is missing, stale
// or names another id: a publication to a channel nobody watches needs
// neither.
const replicationIDs = `
local rid, rid2
local function replIDs()
  if rid == nil then
    rid, rid2 = '', ''
    local info = redis.pcall('INFO', 'replication')
    if type(info) == 'string' then
      rid = string.match(info, 'master_replid:(%w+)') or ''
      rid2 = string.match(info, 'master_replid2:(%w+)') or ''
    end
  end
  return rid, rid2
end
-- knownReplID reports whether field s of a meta hash, "<unix ms> <id>",
-- says that the running server read its replication id r less than a
-- second before nowms. noteReplID writes it, for this server alone.
local function knownReplID(s, r, nowms)
  local at, id = string.match(s, '^(%d+) (%w+)$')
  at = tonumber(at)
  return id == r and at ~= nil and at <= nowms and nowms - at < 1000
end
local function noteReplID(meta, id, nowms)
  redis.set_repl(redis.REPL_NONE)
  redis.call('HSET', meta, 's', nowms .. ' ' .. id)
  redis.set_repl(redis.REPL_ALL)
end
`

// publishScript appends one message to each of its channels. Per channel,
// atomically: it starts a new epoch when the channel's history is missing
// or was written by a primary that failed over (see above), skips an
// event id it has already kept, assigns the next offset, appends to the
// stream trimmed to the history size, and publishes. It returns each
// channel's offset, 0 for a duplicate.
//
// A channel nobody watches gets no history, as in broker.Memory: when it
// has no meta hash (History, which hubs call when a client subscribes and
// pages call to render a position, creates one) and no pub/sub subscriber
// on this server, nothing is written; the script returns -1 for it. On a
// single Redis nothing is published either, since no hub listens; with
// SPUBLISH (Redis Cluster) the message is published without a position
// (epoch "", offset 0), for hubs subscribed to replicas, which the
// primary does not count. Most record channels are never watched, and
// cost Redis neither the commands nor the memory of a history.
//
// The hot path is five commands a channel (HMGET, ZADD NX of the event
// id, HINCRBY, XADD, PUBLISH) and a TIME per call; a duplicate id costs a
// ZSCORE, to tell it from a stale one. The rest is done only every
// 32nd offset or when the keys' expiry is due for renewal: trimming the
// stream by age (History checks the age of what it serves, so entries
// past HistoryTTL are never recovered meanwhile) and the id set by offset
// (a stale id found there is ignored by comparing offsets), and renewing
// the expiry. The meta hash's field x holds the time of the last renewal;
// the three keys then expire together, 1.25 HistoryTTL after it, which is
// at least HistoryTTL after the last publication. Field d says the id set
// exists and carries that expiry. The publisher encodes the message once
// (the entry: id, origin, time, data) and the script keeps it in the
// stream as one field behind the offset, and publishes it behind the
// epoch: a stream entry of one field, and a script call of few arguments,
// cost Redis less than one field and one argument for each part.
//
// KEYS: per channel meta, stream, ids (all with the channel's hash tag, so
// a call for one channel is valid on Redis Cluster). ARGV: event id, the
// entry ("<event id>[\x1f<origin>]\n<unix ns>\n<data>"), history size,
// TTL (ms), dedupe ("1" or "0"), candidate epoch, PUBLISH or SPUBLISH,
// then the channels' pub/sub channels.
var publishScript = redis.NewScript(replicationIDs + `
local size = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local dedupe = ARGV[5] == '1'
local now = redis.call('TIME')
local nowms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local numsub = ARGV[7] == 'SPUBLISH' and 'SHARDNUMSUB' or 'NUMSUB'
local res = {}
for c = 0, #KEYS / 3 - 1 do
  local meta, stream, ids = KEYS[c*3+1], KEYS[c*3+2], KEYS[c*3+3]
  local pub = ARGV[8+c]
  local m = redis.call('HMGET', meta, 'e', 'o', 'x', 'd', 'r', 's')
  if not m[1] and redis.call('PUBSUB', numsub, pub)[2] == 0 then
    if numsub ~= 'NUMSUB' then
      -- Sharded: replicas' subscribers are not counted.
      redis.call(ARGV[7], pub, '1\n\n0\n' .. ARGV[2])
    end
    res[c+1] = -1
  else
    local epoch, last, renewed, hasIds = m[1], tonumber(m[2]) or 0, tonumber(m[3]), m[4]
    -- cur: the running server's replication id, from INFO unless this
    -- server noted within the last second that it is field r's.
    local cur, asked = m[5], false
    if not (m[5] and m[6] and knownReplID(m[6], m[5], nowms)) then
      cur, asked = replIDs(), true
      if epoch and m[5] and m[5] ~= rid and m[5] == rid2 then
        epoch = nil
      end
    end
    if not epoch then
      epoch = ARGV[6]
      redis.call('DEL', meta, stream, ids)
      redis.call('HSET', meta, 'e', epoch, 'o', 0, 'r', cur)
      last, renewed, hasIds = 0, nil, nil
    elseif m[5] ~= cur then
      redis.call('HSET', meta, 'r', cur)
    end
    if asked and cur ~= '' then
      noteReplID(meta, cur, nowms)
    end
    -- The id goes in with the offset it is about to get (HINCRBY below
    -- answers last + 1); one already there is a duplicate unless its
    -- offset has left the history (stale), when it takes the new one.
    local dup, stale = false, false
    if dedupe and redis.call('ZADD', ids, 'NX', last + 1, ARGV[1]) == 0 then
      dup = tonumber(redis.call('ZSCORE', ids, ARGV[1])) > last - size
      stale = not dup
    end
    if dup then
      res[c+1] = 0
    else
      local off = redis.call('HINCRBY', meta, 'o', 1)
      local entry = off .. '\n' .. ARGV[2]
      redis.call('XADD', stream, 'MAXLEN', size, '*', 'p', entry)
      local renew = renewed == nil or renewed <= nowms - ttl / 4
      local tidy = renew or off % 32 == 0
      local expireAt = nowms + ttl + math.floor(ttl / 4)
      if renew then
        redis.call('HSET', meta, 'x', nowms)
      else
        expireAt = renewed + ttl + math.floor(ttl / 4)
      end
      if stale then
        redis.call('ZADD', ids, off, ARGV[1])
      end
      if dedupe then
        if tidy then
          redis.call('ZREMRANGEBYSCORE', ids, '-inf', off - size)
        end
        if not hasIds then
          redis.call('HSET', meta, 'd', 1)
          redis.call('PEXPIREAT', ids, expireAt)
        end
      end
      if tidy then
        redis.call('XTRIM', stream, 'MINID', '~', nowms - ttl)
      end
      if renew then
        redis.call('PEXPIREAT', meta, expireAt)
        redis.call('PEXPIREAT', stream, expireAt)
        redis.call('PEXPIREAT', ids, expireAt)
      end
      redis.call(ARGV[7], pub, '1\n' .. epoch .. '\n' .. entry)
      res[c+1] = off
    end
  end
end
return res
`)

// historyScript reads a channel's position and, when the asked-for
// position can be served, the publications after it (newest first). Like
// broker.Memory it creates the channel, with a new epoch, when it has no
// history, so that the position it answers stays valid (for HistoryTTL
// from the last look, while nothing is published), and when the
// history was written by a primary that failed over, as publishScript
// does. A publication older than HistoryTTL is not served (publishScript
// trims the stream by age only now and then).
//
// The number of publications asked for is known from the offsets before
// any is read: over the most publications allowed, the script answers the
// position alone. It reads the stream in steps, adding up the size of the
// data, and answers the position alone as soon as that is over the most
// bytes allowed: a request for a position far behind costs Redis little
// more than the limit.
//
// KEYS: meta, stream, ids. ARGV: candidate epoch, TTL (ms), since epoch, since
// offset ("" when none), most publications, most bytes (0: no limit).
var historyScript = redis.NewScript(replicationIDs + `
local m = redis.call('HMGET', KEYS[1], 'e', 'r', 's')
local epoch = m[1]
local now = redis.call('TIME')
local nowms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cur, asked = m[2], false
if not (m[2] and m[3] and knownReplID(m[3], m[2], nowms)) then
  cur, asked = replIDs(), true
  if epoch and m[2] and m[2] ~= rid and m[2] == rid2 then
    epoch = nil
  end
end
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0, 'r', cur)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif m[2] ~= cur then
  redis.call('HSET', KEYS[1], 'r', cur)
end
if asked and cur ~= '' then
  noteReplID(KEYS[1], cur, nowms)
end
local off = tonumber(redis.call('HGET', KEYS[1], 'o'))
if off == 0 then
  -- Looked at again: the full TTL, which releaseScript may have cut.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if ARGV[4] == '' or ARGV[3] ~= epoch then
  return {epoch, off}
end
local since = tonumber(ARGV[4])
if since >= off then
  return {epoch, off}
end
local n = off - since
local maxn, maxb = tonumber(ARGV[5]), tonumber(ARGV[6])
if maxn > 0 and n > maxn then
  return {epoch, off}
end
if redis.call('XLEN', KEYS[2]) < n then
  return {epoch, off}
end
local entries = {}
local from, left, size = '+', n, 0
local step = maxb > 0 and 64 or n
while left > 0 do
  local chunk = redis.call('XREVRANGE', KEYS[2], from, '-', 'COUNT', math.min(left, step))
  if #chunk == 0 then
    break
  end
  for i = 1, #chunk do
    local f = chunk[i][2]
    for j = 1, #f - 1, 2 do
      if f[j] == 'd' or f[j] == 'p' then
        size = size + #f[j+1]
      end
    end
    entries[#entries+1] = chunk[i]
  end
  if maxb > 0 and size > maxb then
    return {epoch, off}
  end
  left = left - #chunk
  from = '(' .. chunk[#chunk][1]
end
local cutoff = nowms - tonumber(ARGV[2])
local oldest = #entries > 0 and tonumber(string.match(entries[#entries][1], '^(%d+)'))
if not oldest or oldest < cutoff then
  return {epoch, off}
end
return {epoch, off, entries}
`)

// releaseScript shortens the life of a channel that was only looked at:
// its meta hash, made by historyScript, when no publication ever followed
// (offset 0) and no subscriber on this server watches its pub/sub channel,
// then expires UnwatchedTTL from now rather than HistoryTTL after the
// look. Subscriptions run it once Redis has confirmed their unsubscribe,
// so that subscribing to name after name leaves nothing behind for long.
//
// KEYS: meta. ARGV: "NUMSUB" or "SHARDNUMSUB", the pub/sub channel,
// UnwatchedTTL (ms).
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'o') ~= '0' then
  return 0
end
if redis.call('PUBSUB', ARGV[1], ARGV[2])[2] ~= 0 then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or ttl > tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
`)

// tagged returns the start of every key of channel ch: the prefix and the
// hash tag. Redis Cluster hashes the text between a key's first "{" and
// the first "}" after it, or the whole key when that text is empty. A name
// without "}" is its own tag, "<prefix>:{<ch>}". A name with a "}" would
// end the tag early, or leave it empty (a name starting with "}") so that
// the channel's keys land in different slots: such a name gets the tag
// "#" and 16 hex digits of its FNV-1a hash, followed by the name,
// "<prefix>:{#<hash>}:<ch>". Either way the tag is never empty, and is
// the same for all of a channel's keys.
func (b *Broker) tagged(ch string) string {
	if !strings.Contains(ch, "}") {
		return b.cfg.Prefix + ":{" + ch + "}"
	}
	return b.cfg.Prefix + ":{" + hashTag(ch) + "}:" + ch
}

// hashTag is the hash tag of a channel name that holds a "}".
func hashTag(ch string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(ch))
	var sum [8]byte
	return "#" + hex.EncodeToString(h.Sum(sum[:0]))
}

func (b *Broker) metaKey(ch string) string    { return b.tagged(ch) + ":meta" }
func (b *Broker) streamKey(ch string) string  { return b.tagged(ch) + ":stream" }
func (b *Broker) idsKey(ch string) string     { return b.tagged(ch) + ":ids" }
func (b *Broker) pubChannel(ch string) string { return b.tagged(ch) + ":pub" }
func (b *Broker) jtiKey(jti string) string    { return b.cfg.Prefix + ":jti:" + jti }

// channelOf turns a pub/sub channel name back into the broker channel.
func (b *Broker) channelOf(pub string) (string, bool) {
	head, tail := b.cfg.Prefix+":{", ":pub"
	if !strings.HasPrefix(pub, head) || !strings.HasSuffix(pub, tail) || len(pub) < len(head)+len(tail)+2 {
		return "", false
	}
	body := pub[len(head) : len(pub)-len(tail)]
	end := strings.IndexByte(body, '}')
	switch {
	case end == len(body)-1 && end > 0:
		return body[:end], true // "<ch>}"
	case end > 0 && strings.HasPrefix(body[end:], "}:"):
		ch := body[end+2:]
		if ch != "" && body[:end] == hashTag(ch) {
			return ch, true // "#<hash>}:<ch>"
		}
	}
	return "", false
}
