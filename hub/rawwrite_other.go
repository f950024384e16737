//go:build !unix

package hub

import (
	"errors"
	"net"
)

// rawWriter is not available here: every connection is written by its
// writer goroutine.
type rawWriter = any

func newRawWriter(net.Conn) rawWriter { return nil }

type rawWrite struct{}

func newRawWrite() *rawWrite { return &rawWrite{} }

func (c *conn) writeNow(*rawWrite, []byte) (bool, error) {
	return false, errors.New("hub: no raw writes on this platform")
}
