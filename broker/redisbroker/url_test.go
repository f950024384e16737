package redisbroker_test

import (
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
)

// TestBadURL: a URL go-redis cannot read (a missing scheme is the usual
// slip) is refused with an error that shows what a valid one looks like.
func TestBadURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		cluster bool
		want    string
	}{
		{"127.0.0.1:6379", false, "redisbroker: bad Redis URL: "},
		{"localhost:6379/0", false, "redisbroker: bad Redis URL: redis: invalid URL scheme: localhost (want redis://[user:password@]host:port/db, rediss:// for TLS, e.g. redis://127.0.0.1:6379/0)"},
		{"http://127.0.0.1", true, "redisbroker: bad Redis Cluster URL: redis: invalid URL scheme: http (want redis://host:port?addr=host2:port2, rediss:// for TLS)"},
	} {
		b, err := redisbroker.New(redisbroker.Config{URL: tc.url, Cluster: tc.cluster})
		if err == nil {
			b.Close(t.Context())
			t.Fatalf("New(%q): no error", tc.url)
		}
		if !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), "(want redis://") {
			t.Errorf("New(%q): %v, want %q", tc.url, err, tc.want)
		}
	}
}
