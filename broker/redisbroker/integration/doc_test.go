// Package integration tests the Redis broker end to end: an app (GORM, the
// plugin, a redisbroker) and hubs each with their own redisbroker, on a
// redis-server the tests start, with real WebSocket clients. It is a
// separate package so that the broker's own tests do not depend on the
// plugin and the hub.
package integration
