package redisbroker

import "github.com/redis/go-redis/v9"

// Key layout. Every key of a channel carries the channel name as its hash
// tag ({channel}), so all of a channel's keys live in one Redis Cluster
// slot and one script may touch them together:
//
//	<prefix>:{<channel>}:meta        hash: e = epoch, o = newest offset
//	<prefix>:{<channel>}:stream      stream: o, i (event id), t (unix ns), d (data)
//	<prefix>:{<channel>}:id:<id>     marks an event id already published
//	<prefix>:{<channel>}:pub         the pub/sub channel hubs subscribe to
//	<prefix>:jti:<jti>               a connection token already used
//
// Every key expires HistoryTTL after the channel's last publication.

// publishScript appends one message to one channel: it starts a new epoch
// when the channel's history is missing, skips an event id it has already
// kept, assigns the next offset, appends to the stream trimmed by size and
// age, refreshes the expiry and publishes, all atomically. It returns the
// offset, or 0 for a duplicate.
//
// KEYS: meta, stream, [id key]. ARGV: candidate epoch, event id, time (unix
// ns), data, history size, TTL (ms), pub/sub channel.
var publishScript = redis.NewScript(`
local ttl = ARGV[6]
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
if #KEYS > 2 then
  if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ttl) then
    return 0
  end
end
local off = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '*', 'o', off, 'i', ARGV[2], 't', ARGV[3], 'd', ARGV[4])
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ttl)
if cutoff > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', '~', cutoff)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PUBLISH', ARGV[7], '1\n' .. epoch .. '\n' .. off .. '\n' .. ARGV[2] .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return off
`)

// historyScript reads a channel's position and, when the asked-for
// position can be served, the publications after it (newest first). Like
// broker.Memory it creates the channel, with a new epoch, when it has no
// history, so that the position it answers stays valid.
//
// KEYS: meta, stream. ARGV: candidate epoch, TTL (ms), since epoch, since
// offset ("" when none).
var historyScript = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local off = tonumber(redis.call('HGET', KEYS[1], 'o'))
if ARGV[4] == '' or ARGV[3] ~= epoch then
  return {epoch, off}
end
local since = tonumber(ARGV[4])
if since >= off then
  return {epoch, off}
end
local n = off - since
if redis.call('XLEN', KEYS[2]) < n then
  return {epoch, off}
end
return {epoch, off, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)}
`)

func (b *Broker) metaKey(ch string) string   { return b.cfg.Prefix + ":{" + ch + "}:meta" }
func (b *Broker) streamKey(ch string) string { return b.cfg.Prefix + ":{" + ch + "}:stream" }
func (b *Broker) idKey(ch, id string) string { return b.cfg.Prefix + ":{" + ch + "}:id:" + id }
func (b *Broker) pubChannel(ch string) string {
	return b.cfg.Prefix + ":{" + ch + "}:pub"
}
func (b *Broker) jtiKey(jti string) string { return b.cfg.Prefix + ":jti:" + jti }

// channelOf turns a pub/sub channel name back into the broker channel.
func (b *Broker) channelOf(pub string) (string, bool) {
	head, tail := b.cfg.Prefix+":{", "}:pub"
	if len(pub) < len(head)+len(tail) || pub[:len(head)] != head || pub[len(pub)-len(tail):] != tail {
		return "", false
	}
	return pub[len(head) : len(pub)-len(tail)], true
}
