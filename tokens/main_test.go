package tokens_test

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// testSecret is exactly MinSecretLen bytes.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// epoch is the fake time the tests and the fuzz seeds are minted at.
var epoch = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

// clock is a settable clock for Now fields.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestMain fails the run when goroutines started by the tests outlive them.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunCheckingLeaks(m))
}
