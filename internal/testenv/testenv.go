// Package testenv gives tests the real services they run against: a fresh
// PostgreSQL schema, a fresh MariaDB/MySQL database, a throwaway
// redis-server, the Chromium binary. A test whose service is missing skips
// and says why; with TELEGRAPHY_TEST_REQUIRE_SERVICES=1 it fails instead.
//
// In short mode (go test -short, the fast tier) every test that asks for a
// service skips, whatever TELEGRAPHY_TEST_REQUIRE_SERVICES says, and so do
// the long tests that call SkipIfShort.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver for setup
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for setup
)

// Default DSNs of the services on the project's machines.
const (
	DefaultPostgresDSN = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
	DefaultMySQLDSN    = "root@tcp(127.0.0.1:3306)/test?parseTime=true&loc=UTC"
)

// RequireServices reports whether missing services fail tests rather than
// skip them (TELEGRAPHY_TEST_REQUIRE_SERVICES=1).
func RequireServices() bool { return os.Getenv("TELEGRAPHY_TEST_REQUIRE_SERVICES") == "1" }

// Missing skips t, or fails it when services are required, saying why.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireServices() {
		t.Fatalf("required service missing: %s", msg)
	}
	t.Skipf("service missing: %s", msg)
}

// SkipIfShort skips t in short mode, saying what the fast tier leaves out.
func SkipIfShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("short mode: %s", what)
	}
}

func randName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// PostgresDSN returns a DSN for a fresh schema in the test PostgreSQL
// database (TELEGRAPHY_TEST_POSTGRES_DSN, or DefaultPostgresDSN when that
// server answers). The schema is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	SkipIfShort(t, "needs PostgreSQL")
	base := os.Getenv("TELEGRAPHY_TEST_POSTGRES_DSN")
	if base == "" {
		base = DefaultPostgresDSN
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		Missing(t, "postgres: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		Missing(t, "postgres at %q: %v", base, err)
	}
	schema := randName("t_")
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	return base + " search_path=" + schema
}

// MySQLDSN returns a DSN for a fresh database on the test MariaDB/MySQL
// server (TELEGRAPHY_TEST_MYSQL_DSN, or DefaultMySQLDSN when that server
// answers). The database is dropped when the test ends.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	SkipIfShort(t, "needs MariaDB/MySQL")
	base := os.Getenv("TELEGRAPHY_TEST_MYSQL_DSN")
	if base == "" {
		base = DefaultMySQLDSN
	}
	db, err := sql.Open("mysql", base)
	if err != nil {
		Missing(t, "mysql: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		Missing(t, "mysql at %q: %v", base, err)
	}
	name := randName("t_")
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("mysql: create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE " + name)
	})
	// Replace the database part: user@tcp(host)/DB?params
	slash := strings.LastIndex(base, "/")
	rest := ""
	if q := strings.Index(base[slash:], "?"); q >= 0 {
		rest = base[slash+q:]
	}
	return base[:slash+1] + name + rest
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Redis is a redis-server started for one test.
type Redis struct {
	Port int
	URL  string
	// Persist makes the server keep its data across Stop and Start in an
	// append-only file synced on every write; set it before (re)starting.
	// Without it a restarted server is empty, as after losing its data.
	Persist bool
	bin     string
	dir     string
	cmd     *exec.Cmd
	t       testing.TB
}

// StartRedis starts a throwaway redis-server on a free port, without
// persistence, and stops it when the test ends. With
// TELEGRAPHY_TEST_REDIS_URL set, tests that need not restart Redis may use
// that instead; see RedisURL.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, false)
}

// StartRedisWith is StartRedis with the server's Persist setting.
func StartRedisWith(t testing.TB, persist bool) *Redis {
	t.Helper()
	SkipIfShort(t, "needs redis-server")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "redis-server not on PATH")
	}
	r := &Redis{Port: FreePort(t), Persist: persist, bin: bin, dir: t.TempDir(), t: t}
	r.URL = "redis://127.0.0.1:" + strconv.Itoa(r.Port) + "/0"
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start starts (or restarts) the server on its port and waits until it
// accepts connections.
func (r *Redis) Start() {
	r.t.Helper()
	if r.cmd != nil {
		return
	}
	args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(r.Port),
		"--save", "", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log")}
	if r.Persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command(r.bin, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.Port), 200*time.Millisecond)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("redis-server on port %d did not start", r.Port)
}

// Stop kills the server (SIGKILL: without Persist its data is lost) and
// waits for it.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// RedisURL returns TELEGRAPHY_TEST_REDIS_URL when set, or the URL of a
// throwaway server started for this test.
func RedisURL(t testing.TB) string {
	t.Helper()
	SkipIfShort(t, "needs redis-server")
	if u := os.Getenv("TELEGRAPHY_TEST_REDIS_URL"); u != "" {
		if _, err := url.Parse(u); err != nil {
			t.Fatalf("TELEGRAPHY_TEST_REDIS_URL: %v", err)
		}
		return u
	}
	return StartRedis(t).URL
}

// Chromium returns the path of the Chromium binary for browser tests.
func Chromium(t testing.TB) string {
	t.Helper()
	SkipIfShort(t, "needs Chromium")
	for _, p := range []string{os.Getenv("TELEGRAPHY_TEST_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Missing(t, "chromium not installed (apt-get install chromium)")
	return ""
}
