package hub_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
)

// update rewrites the golden files from what the hub sends:
// go test -run TestGoldenProtocol -update ./hub/
var update = flag.Bool("update", false, "rewrite the golden files in ../testdata/")

// volatile matches the fields of a message that differ on every run: the
// session ID and a channel's epoch.
var volatile = regexp.MustCompile(`"(session|epoch)":"[^"]*"`)

// TestGoldenProtocol: the hub's messages are the ones in
// testdata/protocol (with session IDs and epochs normalised), the events
// inside them byte for byte those of testdata/events.
func TestGoldenProtocol(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	golden := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "events", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.TrimSuffix(b, []byte("\n"))
	}
	publish := func(id, event string) {
		err := e.broker.Publish(ctx, broker.Message{EventID: id, Channels: []string{"shop.Kinds", "shop.Kinds:1"}, Data: golden(event)})
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, m msg) {
		t.Helper()
		got := volatile.ReplaceAllString(m.raw, `"$1":"`+map[bool]string{true: "SESSION", false: "EPOCH"}[m.Type == "welcome"]+`"`)
		path := filepath.Join("..", "testdata", "protocol", name+".json")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got+"\n" != string(want) {
			t.Errorf("%s changed: what clients receive is a contract.\n got: %s\nwant: %s(if the change is meant, run go test -run TestGoldenProtocol -update ./hub/ and say so in the commit)", path, got, want)
		}
	}

	c := e.mustDial()
	c.send(`{"type":"hello","token":"` + e.token("17", "shop.Kinds", "shop.Kinds:*") + `"}`)
	check("welcome", c.expect("welcome"))
	c.send(`{"type":"subscribe","id":1,"channel":"shop.Kinds"}`)
	first := c.expect("subscribed")
	check("subscribed", first)
	publish("e1", "create")
	check("event", c.expect("event"))
	c.send(`{"type":"ping","id":2}`)
	check("pong", c.expect("pong"))
	c.send(`{"type":"subscribe","id":3,"channel":"user:18"}`)
	check("error_forbidden", c.expect("error"))
	c.send(`{"type":"subscribe","id":4}`)
	check("error_bad_request", c.expect("error"))
	c.send(`{"type":"unsubscribe","id":5,"channel":"shop.Kinds"}`)
	check("unsubscribed", c.expect("unsubscribed"))
	// Missed while unsubscribed, recovered from offset 1 (the create).
	publish("e2", "update")
	publish("e3", "delete")
	c.send(`{"type":"subscribe","id":6,"channel":"shop.Kinds","since":{"epoch":"` + first.Epoch + `","offset":1}}`)
	check("subscribed_recovered", c.expect("subscribed"))

	bad := e.mustDial()
	bad.send(`{"type":"hello","token":"not-a-token"}`)
	check("error_unauthorized", bad.expect("error"))
	bad.expectClose(4001)
}
