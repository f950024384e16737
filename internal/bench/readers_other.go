//go:build !linux

package bench

import "sync/atomic"

// startReaders reads every client's connection from a goroutine of its
// own. (On Linux the clients are read from a few epoll loops instead; see
// readers_linux.go.) stop returns at once: the clients' goroutines end
// when the caller closes the connections.
func startReaders(clients []*client, stopping *atomic.Bool) (stop func(), err error) {
	for _, c := range clients {
		go c.run(stopping)
	}
	return func() {}, nil
}
