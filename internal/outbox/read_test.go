package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestReadTwice: with two reads per batch (as on MySQL and MariaDB), a row
// the first read left out below its highest ID is published in ID order
// with the rows around it, and a row the second read holds above that ID
// waits for the next round, where a row below it that committed meanwhile
// goes first. Rows are inserted with chosen IDs between the reads to play
// the snapshots that leave rows out.
func TestReadTwice(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "o.db")+"?_journal_mode=WAL&_busy_timeout=5000"),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	ctx := context.Background()
	mem := broker.NewMemory()
	defer mem.Close(ctx)
	sub, err := mem.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Add(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	o, err := New(db, Config{Table: "outbox", Broker: mem, NoRelay: true, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o.rereads = true
	var mu sync.Mutex
	written := map[int]bool{}
	write := func(ids ...int) { // runs on the relay's goroutine too
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if written[id] {
				continue
			}
			written[id] = true
			err := o.db.Exec("INSERT INTO outbox (id, event_id, channels, data, created_ns, origin) VALUES (?, ?, ?, ?, ?, '')",
				id, fmt.Sprintf("e%d", id), `["c"]`, []byte(fmt.Sprint(id)), time.Now().UnixNano()).Error
			if err != nil {
				t.Errorf("insert %d: %v", id, err)
			}
		}
	}
	write(1, 3)
	rounds := 0
	betweenReads = func() {
		rounds++
		switch rounds {
		case 1: // the first read saw 1 and 3: 2 was left out, 5 came after
			write(2, 5)
		case 2: // the first read saw 5: 4 came before it
			write(4)
		}
	}
	defer func() { betweenReads = nil }()
	o.relay = newRelay(o)
	go o.relay.run()
	defer o.Close(ctx)

	var got []string
	receive := func(n int) {
		t.Helper()
		testenv.WaitFor(t, 10*time.Second, func() bool {
			for {
				select {
				case pub := <-sub.C():
					got = append(got, string(pub.Data))
				default:
					return len(got) >= n
				}
			}
		}, fmt.Sprintf("%d rows published", n))
	}
	receive(3)
	write(4) // if the relay has not asked for it (it then published 5 already)
	o.Committed()
	receive(5)
	time.Sleep(50 * time.Millisecond) // nothing more may come
	for len(sub.C()) > 0 {
		got = append(got, string((<-sub.C()).Data))
	}
	if s, _ := json.Marshal(got); string(s) != `["1","2","3","4","5"]` {
		t.Fatalf("published %s, want rows 1 to 5 once each in ID order", s)
	}
}
