package redisbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
)

// Presence keys, in the channel's hash tag like its other keys:
//
//	<prefix>:{<channel>}:pz   sorted set: "<node>\n<subject>" -> expiry (Redis
//	                          time, unix ms): one entry per hub holding the subject
//	<prefix>:{<channel>}:pi   hash: subject -> info (JSON object, "" for none)
//	<prefix>:{<channel>}:pn   hash: subject -> number of entries in pz
//
// They exist only while the channel has a member, and expire together one
// second after the latest entry would: the keys of a channel whose hubs
// all died disappear by themselves. Expiry is checked against Redis's own
// clock (TIME), so hubs' clocks do not matter.
func (b *Broker) presenceKeys(ch string) []string {
	t := b.tagged(ch)
	return []string{t + ":pz", t + ":pi", t + ":pn"}
}

// updatePresenceScript expires the entries whose time has passed, removes
// node's entries for ARGV[5..4+nremove], and adds or refreshes node's
// entries for the (subject, info) pairs after them, within the cap.
// ARGV: node, TTL ms, max members, nremove, removed subjects..., pairs...
// It returns {left, joined, full} subject lists.
var updatePresenceScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, ttl, max, nrem = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local left, joined, full = {}, {}, {}
local function drop(e)
  local s = string.sub(e, string.find(e, '\n', 1, true) + 1)
  redis.call('ZREM', KEYS[1], e)
  if redis.call('HINCRBY', KEYS[3], s, -1) <= 0 then
    redis.call('HDEL', KEYS[3], s)
    redis.call('HDEL', KEYS[2], s)
    left[#left + 1] = s
  end
end
for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do drop(e) end
for i = 5, 4 + nrem do
  local e = node .. '\n' .. ARGV[i]
  if redis.call('ZSCORE', KEYS[1], e) then drop(e) end
end
local expiry = now + ttl
for i = 5 + nrem, #ARGV, 2 do
  local s, info = ARGV[i], ARGV[i + 1]
  local e = node .. '\n' .. s
  if redis.call('ZSCORE', KEYS[1], e) then
    redis.call('ZADD', KEYS[1], expiry, e)
    redis.call('HSET', KEYS[2], s, info)
  else
    local n = tonumber(redis.call('HGET', KEYS[3], s) or '0')
    if n == 0 and redis.call('HLEN', KEYS[3]) >= max then
      full[#full + 1] = s
    else
      redis.call('ZADD', KEYS[1], expiry, e)
      redis.call('HINCRBY', KEYS[3], s, 1)
      redis.call('HSET', KEYS[2], s, info)
      if n == 0 then joined[#joined + 1] = s end
    end
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  local at = tonumber(last[2]) + 1000
  for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], at) end
else
  redis.call('DEL', KEYS[2], KEYS[3])
end
return {left, joined, full}
`)

// presenceScript returns subject, info pairs for the live entries (at
// most MaxMembers subjects, the cap UpdatePresence keeps).
var presenceScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen, out = {}, {}
for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local s = string.sub(e, string.find(e, '\n', 1, true) + 1)
  if not seen[s] then
    seen[s] = true
    out[#out + 1] = s
    out[#out + 1] = redis.call('HGET', KEYS[2], s) or ''
  end
end
return out
`)

// UpdatePresence implements broker.Presencer: one script call, on the
// channel's keys only (see presenceKeys).
func (b *Broker) UpdatePresence(ctx context.Context, channel, node string, add []broker.PresenceMember, remove []string, lease broker.PresenceLease) (broker.PresenceChange, error) {
	var ch broker.PresenceChange
	if err := broker.CheckPresenceUpdate(channel, node, add, remove, lease); err != nil {
		return ch, err
	}
	if b.isClosed() {
		return ch, broker.ErrClosed
	}
	args := make([]any, 0, 4+len(remove)+2*len(add))
	args = append(args, node, lease.TTL.Milliseconds(), lease.MaxMembers, len(remove))
	for _, s := range remove {
		args = append(args, s)
	}
	infos := make(map[string]json.RawMessage, len(add))
	for _, m := range add {
		args = append(args, m.Subject, string(m.Info))
		infos[m.Subject] = m.Info
	}
	res, err := updatePresenceScript.Run(ctx, b.client, b.presenceKeys(channel), args...).Slice()
	if err != nil {
		return ch, fmt.Errorf("redisbroker: presence update: %w", err)
	}
	if len(res) != 3 {
		return ch, fmt.Errorf("redisbroker: presence update: unexpected reply %v", res)
	}
	ch.Left = replyStrings(res[0])
	for _, s := range replyStrings(res[1]) {
		ch.Joined = append(ch.Joined, broker.PresenceMember{Subject: s, Info: infos[s]})
	}
	ch.Full = replyStrings(res[2])
	return ch, nil
}

// Presence implements broker.Presencer. It reads the channel's keys and
// never creates them.
func (b *Broker) Presence(ctx context.Context, channel string, max int) ([]broker.PresenceMember, error) {
	if err := broker.CheckChannels(channel); err != nil {
		return nil, err
	}
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	res, err := presenceScript.Run(ctx, b.client, b.presenceKeys(channel)[:2]).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: presence: %w", err)
	}
	out := make([]broker.PresenceMember, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		m := broker.PresenceMember{Subject: res[i]}
		if res[i+1] != "" {
			m.Info = json.RawMessage(res[i+1])
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// replyStrings turns a script's list reply into strings.
func replyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
