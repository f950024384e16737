package faulttest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

const channel = "fault.Item"

// database is where the app processes of one test write.
type database struct {
	driver, dsn string
}

// databases are the databases TestAppKilled runs on; each call makes a
// fresh one for the test.
var databases = []struct {
	name string
	open func(t *testing.T) database
}{
	{"sqlite", func(t *testing.T) database { return database{"sqlite", filepath.Join(t.TempDir(), "app.db")} }},
	{"postgres", func(t *testing.T) database { return database{"postgres", testenv.PostgresDSN(t)} }},
	{"mysql", func(t *testing.T) database { return database{"mysql", testenv.MySQLDSN(t)} }},
}

func (d database) open(t testing.TB) *gorm.DB {
	t.Helper()
	var dl gorm.Dialector
	switch d.driver {
	case "sqlite":
		dl = sqlite.Open(d.dsn + "?_journal_mode=WAL&_busy_timeout=10000")
	case "postgres":
		dl = postgres.Open(d.dsn)
	case "mysql":
		dl = mysql.Open(d.dsn)
	}
	db, err := gorm.Open(dl, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return db
}

// committed returns the Seq of every committed item, which must be
// 1..n, and checks that no rolled-back item exists.
func (d database) committed(t testing.TB) int {
	t.Helper()
	db := d.open(t)
	var seqs []int
	if err := db.Table("items").Order("seq").Pluck("seq", &seqs).Error; err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("items table: seq %d at position %d (rolled-back rows have seq -1)", s, i)
		}
	}
	return len(seqs)
}

func (d database) outboxRows(t testing.TB) int64 {
	t.Helper()
	var n int64
	if err := d.open(t).Table("telegraphy_outbox").Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// waitOutboxEmpty waits until the outbox table has no rows, failing the
// test with the count left after timeout.
func (d database) waitOutboxEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	db := d.open(t)
	deadline := time.Now().Add(timeout)
	for {
		var n int64
		if err := db.Table("telegraphy_outbox").Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d rows after %v", n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d database) appArgs(redisURL string, extra ...string) []string {
	return append([]string{"app", "-driver", d.driver, "-dsn", d.dsn, "-redis", redisURL}, extra...)
}

// lastSeq parses "committed <seq>".
func lastSeq(t testing.TB, line string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(line, "committed "))
	if err != nil {
		t.Fatalf("bad line %q", line)
	}
	return n
}

// TestAppKilled (SQLite, PostgreSQL, MariaDB) kills app processes with SIGKILL right after their commits:
// first one without a relay, so that all its events are still in the
// outbox, then one with a relay, killed as soon as its last commit
// returned. A third app's relay publishes what is left; the connected
// client receives every committed event once, in commit order.
func TestAppKilled(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			d := db.open(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := testenv.StartRedis(t)
			_, url := startHub(t, "hub", r.URL)
			c := newClient(ctx, t, channel, url)

			a1 := start(t, "app1", d.appArgs(r.URL, "-relay=false", "-from", "1", "-n", "100", "-rollback-every", "7")...)
			a1.waitLine("done", 60*time.Second)
			a1.kill()
			if n := d.outboxRows(t); n != 100 {
				t.Fatalf("after app1 (no relay) was killed the outbox holds %d rows, want 100", n)
			}
			if n := c.count(); n != 0 {
				t.Fatalf("client received %d events with no relay running", n)
			}

			a2 := start(t, "app2", d.appArgs(r.URL, "-from", "101", "-n", "300", "-rollback-every", "7")...)
			a2.waitLine("committed 400", 60*time.Second)
			a2.kill()
			left := d.outboxRows(t)
			t.Logf("outbox rows left by the killed app2: %d", left)

			a3 := start(t, "app3", d.appArgs(r.URL, "-from", "401", "-n", "0")...)
			a3.waitLine("done", 60*time.Second)
			n := d.committed(t)
			if n < 400 {
				t.Fatalf("%d items committed, want at least 400", n)
			}
			c.waitCount(n, 60*time.Second)
			// The client may have everything before app3's relay has the
			// lease: app2 can die after publishing and before deleting.
			// app3 must still take over and empty the outbox, and its
			// second copies must not reach the client.
			d.waitOutboxEmpty(t, 60*time.Second)
			a3.term()
			c.check("client", n)
		})
	}
}

// TestRedisDown kills Redis (which keeps its data in an append-only file)
// for 10 seconds while an app commits 1,000 rows, rolling a transaction
// back every 50. The rows committed meanwhile wait in the outbox; once
// Redis is back the relay publishes them, and the client, connected to a
// hub all along, receives every committed event once, in order, and none
// of the rolled-back ones.
func TestRedisDown(t *testing.T) {
	d := database{"sqlite", filepath.Join(t.TempDir(), "app.db")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := testenv.StartRedisWith(t, true)
	_, url := startHub(t, "hub", r.URL)
	c := newClient(ctx, t, channel, url)

	app := start(t, "app", d.appArgs(r.URL, "-from", "1", "-n", "1000", "-pace", "15ms", "-rollback-every", "50")...)
	app.waitLine("committed 100", 60*time.Second)
	r.Stop()
	down := time.Now()
	// Let time pass on purpose: the outage outlasts the default
	// PublishTimeout (5 s) twice, so the relay keeps waiting for Redis past
	// its publish deadline while the app commits a few hundred rows.
	time.Sleep(10 * time.Second)
	during := lastSeq(t, app.latest("committed ", 10*time.Second))
	waiting := d.outboxRows(t)
	r.Start()
	t.Logf("Redis down for %s; app reached seq %d meanwhile; outbox held %d rows", time.Since(down).Round(time.Millisecond), during, waiting)
	if waiting == 0 {
		t.Fatalf("outbox empty while Redis was down: nothing was committed meanwhile")
	}
	app.waitLine("done", 120*time.Second)
	if n := d.committed(t); n != 1000 {
		t.Fatalf("%d items committed, want 1000", n)
	}
	c.waitCount(1000, 60*time.Second)
	app.term()
	if rows := d.outboxRows(t); rows != 0 {
		t.Errorf("outbox holds %d rows after the relay drained it", rows)
	}
	c.check("client", 1000)
}

// TestHubKilled kills the hub that 20 clients are connected to while an
// app commits; the clients reconnect to a second hub with the last
// position they saw and recover exactly the events they missed.
func TestHubKilled(t *testing.T) {
	d := database{"sqlite", filepath.Join(t.TempDir(), "app.db")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := testenv.StartRedis(t)
	hubA, urlA := startHub(t, "hubA", r.URL)
	_, urlB := startHub(t, "hubB", r.URL)
	const nClients, nRows = 20, 600
	clients := make([]*client, nClients)
	for i := range clients {
		clients[i] = newClient(ctx, t, channel, urlA, urlB)
	}
	app := start(t, "app", d.appArgs(r.URL, "-from", "1", "-n", strconv.Itoa(nRows), "-pace", "3ms")...)
	for _, c := range clients {
		c.waitCount(150, 60*time.Second)
	}
	hubA.kill()
	app.waitLine("done", 120*time.Second)
	for i, c := range clients {
		c.waitCount(nRows, 60*time.Second)
		c.check(fmt.Sprintf("client %d", i), nRows)
		c.mu.Lock()
		if c.reconnects == 0 {
			t.Errorf("client %d never reconnected after its hub was killed", i)
		}
		c.mu.Unlock()
	}
	app.term()
}
