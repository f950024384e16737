// Package hub is the WebSocket gateway of Telegraphy: it authenticates
// browsers with single-use tokens, lets them subscribe to channels, and
// delivers the events a Broker carries, with recovery of missed events
// after a reconnect. The wire protocol is documented in docs/protocol.md.
//
//	h, err := hub.New(hub.Config{Broker: bus, Secret: secret})
//	mux.Handle("/telegraphy/", http.StripPrefix("/telegraphy", h))
//	...
//	h.Close(ctx)
//
// A Hub is an http.Handler serving, below its mount point:
//
//	/ws             the WebSocket endpoint
//	/healthz        200 "ok", or 503 and the reason (broker down, hub closed)
//	/metrics        Prometheus metrics (telegraphy_hub_*)
//	/telegraphy.js  the browser client (and /telegraphy.d.ts)
//
// # Presence
//
// Channels matching Config.Presence have presence: a subscriber can ask
// who is subscribed (token subjects and their info claims) and get join
// and leave notices. The hub announces its members to the broker
// (broker.Presencer) when a subject's first local connection subscribes
// and PresenceLeaveDelay after its last one went (unless one came back
// meanwhile; at once when the hub closes), and refreshes them every
// PresenceHeartbeat; notices travel between hubs on
// PresencePrefix+channel. See docs/protocol.md, "Presence".
//
// # Configuration
//
// The project's packages share one rule for configuration values: a zero
// field means the default its comment documents; a negative value is an
// error naming the field, returned by the constructor (New), except in
// the fields whose comment gives negative values a meaning (none, or no
// limit): here TokenLeeway, where it means none.
//
// Tokens are checked by Config.Verifier (a tokens.Verifier), or by one
// New builds from Config.Secret, ReplayStore and TokenLeeway.
//
// # Concurrency
//
// New, ServeHTTP, Revoke and Close may be called from any goroutine. A hub
// holds one broker Subscription: a channel is added to it when its first
// local subscriber arrives and removed when its last one leaves. One
// dispatcher goroutine reads the subscription, encodes each publication
// once per channel and queues the shared bytes to every subscribed
// connection. Each connection has one reader goroutine for its whole life.
// Its queued messages are written, several to a frame, by a hub-wide pool
// of one goroutine per CPU that takes connections in the order their
// messages arrived and never waits on a socket, so that a fan-out to
// thousands of connections wakes no goroutine per connection. A
// connection's own writer goroutine writes what the pool does not: the
// end of a frame the socket could take only in part (it then writes the
// connection's queue until it is empty, waiting on the socket as long as
// WriteTimeout allows), pings, pongs and the close frame; it stays one to
// two seconds after its last write. Pings come from one hub-wide ticker.
// gorilla/websocket writes close frames from the reader goroutine (the
// answer to a client's close, a message over the limit, a protocol error);
// the socket under it writes the end of a frame written in part first, so
// no frame lands inside another. Close stops them all and waits.
//
// # Delivery
//
// Within a channel a client receives events in offset order, each offset
// at most once. Nobody waits for a slow client: a connection's send queue
// is bounded in bytes (Config.SendQueueBytes), and a client whose queue
// would overflow is closed with 4008; it reconnects and recovers with
// since. A subscribe with since returns the missed events (from the
// broker's bounded history) with recovered:true, or recovered:false when
// they are gone, so that the client refetches. When the broker drops
// publications for this hub (its buffer was full), the dispatcher notices
// the offset gap at the channel's next publication or, for drops at the end
// of a burst, by checking every channel against its history once the burst
// is over; it delivers the missing events from history or, when they are
// gone, sends each affected client a subscribed message without id and
// with recovered:false. Delivery is at most once per connection; with
// recovery on reconnect it is at least once per client, and clients drop
// duplicates by meta.id.
//
// An event whose publication carries a broker.Origin (the app's write for
// a request that sent the page's session id) is not delivered to the one
// connection whose session id and token subject are the origin's, neither
// live nor in the missed events of a subscribe on that connection; its
// position moves on all the same, so no gap is reported. Every other
// connection gets it; a connection without a subject never skips.
//
// # Limits
//
// Every limit has a Config field; the zero value means the default:
// frames from clients up to 64 KiB (1009 beyond), text frames in UTF-8
// (1007), 128 channels per connection and 256 distinct channels per
// connection per minute (error "limit"), 20 requests per second with
// bursts of 200 per connection (error "limit", then 1008), 64 connections
// per subject (error "limit" and 1008), 50,000 connections per hub (HTTP
// 503), at most 500 missed events per recovery (recovered:false, decided
// before the history is read), hello within 10 s (4001), 1 MiB send queue
// per connection (4008) over a 64 KiB kernel send buffer, 10 s per write,
// a ping every 25 s and 10 s more for any sign of life. Channel names are
// at most 256 bytes. Frames the hub writes join queued messages up to
// 32 KiB. docs/protocol.md, "Limits and abuse", lists them with what a
// client sees and how to size them.
//
// The hub serves /metrics only with Config.ServeMetrics; MetricsHandler
// serves them wherever the application mounts it. The application's
// http.Server should set ReadHeaderTimeout, ReadTimeout, WriteTimeout and
// IdleTimeout: WebSocket connections are hijacked and keep the hub's own
// deadlines.
//
// An idle authenticated connection with one subscription costs the hub
// about 8 to 10 KiB: one goroutine stack, the WebSocket and TCP state and a
// 512-byte read buffer; write buffers are pooled and held only while
// writing, and a writer goroutine leaves after one to two idle seconds
// (BenchmarkIdleConnectionMemory measures it).
package hub
