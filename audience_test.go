package telegraphy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// Ticket belongs to one user at a time: its events go to "user:<id>" and
// to "team", so that moving it changes one of its channels and keeps the
// other.
type Ticket struct {
	ID        uint           `json:"id"`
	UserID    uint           `json:"user_id"`
	Title     string         `json:"title" gorm:"size:64"`
	Rev       int            `json:"rev"`
	DeletedAt gorm.DeletedAt `json:"deleted_at"`
}

func ticketChannels(m any) []string {
	return []string{fmt.Sprintf("user:%d", m.(*Ticket).UserID), "team"}
}

const ticketName = "tickets.Ticket"

// routed is an expected event and where it goes. With Data, the event
// carries the row and its user_id is User; without, its data is null.
type routed struct {
	Type     string
	Channels []string
	PK       uint
	Data     bool
	User     uint
	Hard     bool // a delete that is not soft
}

func upd(pk, user uint, channels ...string) routed {
	return routed{Type: "update", PK: pk, Data: true, User: user, Channels: append([]string{ticketName, fmt.Sprintf("%s:%d", ticketName, pk)}, channels...)}
}

func enter(pk, user uint, channels ...string) routed {
	return routed{Type: "enter", PK: pk, Data: true, User: user, Channels: channels}
}

func leave(pk uint, channels ...string) routed {
	return routed{Type: "leave", PK: pk, Channels: channels}
}

// expectRouted asserts that exactly want was published (in order) since
// the last Reset, then resets the recorder.
func expectRouted(t testing.TB, rec *broker.Recorder, want ...routed) {
	t.Helper()
	got := rec.Events()
	rec.Reset()
	checkRouted(t, got, want)
}

func checkRouted(t testing.TB, got []events.Event, want []routed) {
	t.Helper()
	show := func() string {
		var sb strings.Builder
		for _, e := range got {
			fmt.Fprintf(&sb, "\n  %s pk=%v soft=%v count=%d %v %s", e.Meta.EventType, e.Meta.PK, e.Meta.Soft, e.Meta.Count, e.Channels, e.Data)
		}
		return sb.String()
	}
	if len(got) != len(want) {
		t.Fatalf("published %d events, want %d:%s", len(got), len(want), show())
	}
	for i, w := range want {
		g := got[i]
		var data map[string]any
		_ = json.Unmarshal(g.Data, &data)
		ok := g.Name == ticketName && g.Meta.EventType == w.Type && slices.Equal(g.Channels, w.Channels) &&
			(data != nil) == w.Data && (!w.Data || data["user_id"] == float64(w.User))
		if w.Type == "bulk_update" {
			ok = ok && g.Meta.PK == nil && g.Meta.Count == int64(w.PK)
		} else {
			ok = ok && reflect.DeepEqual(g.Meta.PK, float64(w.PK))
		}
		if w.Type == "delete" {
			ok = ok && g.Meta.Soft == !w.Hard
		}
		if !ok {
			t.Fatalf("event %d: want %+v; got:%s", i, w, show())
		}
	}
}

// audienceSteps are writes of tickets 1-3 (users 17, 17, 19) and the
// events each must publish, the same on every database, in plain and
// outbox mode, with or without ChannelFields.
var audienceSteps = []struct {
	name  string
	write func(db *gorm.DB) error
	want  []routed
}{
	{"instance update moves it", func(db *gorm.DB) error {
		return db.Model(&Ticket{ID: 1}).Update("user_id", 18).Error
	}, []routed{upd(1, 18, "team"), enter(1, 18, "user:18"), leave(1, "user:17")}},
	{"channels unchanged: update only", func(db *gorm.DB) error {
		return db.Model(&Ticket{ID: 1}).Update("title", "renamed").Error
	}, []routed{upd(1, 18, "user:18", "team")}},
	{"assigning the same user: update only", func(db *gorm.DB) error {
		return db.Model(&Ticket{ID: 1}).Updates(map[string]any{"user_id": 18, "rev": gorm.Expr("rev + 1")}).Error
	}, []routed{upd(1, 18, "user:18", "team")}},
	{"by condition: some move, some do not", func(db *gorm.DB) error {
		return db.Model(&Ticket{}).Where("id IN ?", []uint{1, 2, 3}).Update("user_id", 18).Error
	}, []routed{
		upd(1, 18, "user:18", "team"),
		upd(2, 18, "team"), enter(2, 18, "user:18"), leave(2, "user:17"),
		upd(3, 18, "team"), enter(3, 18, "user:18"), leave(3, "user:19"),
	}},
	{"Save moves it", func(db *gorm.DB) error {
		var tk Ticket
		if err := db.First(&tk, 2).Error; err != nil {
			return err
		}
		tk.UserID = 17
		return db.Save(&tk).Error
	}, []routed{upd(2, 17, "team"), enter(2, 17, "user:17"), leave(2, "user:18")}},
	{"UpdateColumns moves it", func(db *gorm.DB) error {
		return db.Model(&Ticket{ID: 3}).UpdateColumns(Ticket{UserID: 19, Title: "back"}).Error
	}, []routed{upd(3, 19, "team"), enter(3, 19, "user:19"), leave(3, "user:18")}},
	{"soft delete: delete to every channel it was in", func(db *gorm.DB) error {
		return db.Delete(&Ticket{ID: 3}).Error
	}, []routed{{Type: "delete", PK: 3, Data: true, User: 19, Channels: []string{ticketName, ticketName + ":3", "user:19", "team"}}}},
	{"restore: it enters every channel", func(db *gorm.DB) error {
		return db.Unscoped().Model(&Ticket{ID: 3}).Update("deleted_at", nil).Error
	}, []routed{upd(3, 19), enter(3, 19, "user:19", "team")}},
	{"soft delete by update: it leaves every channel", func(db *gorm.DB) error {
		return db.Model(&Ticket{ID: 3}).Update("deleted_at", gorm.Expr("CURRENT_TIMESTAMP")).Error
	}, []routed{upd(3, 19), leave(3, "user:19", "team")}},
	{"update of a deleted row: no channel shows it", func(db *gorm.DB) error {
		return db.Unscoped().Model(&Ticket{ID: 3}).Update("user_id", 17).Error
	}, []routed{upd(3, 17)}},
	{"update of a deleted row that moves nothing: no channel shows it", func(db *gorm.DB) error {
		return db.Unscoped().Model(&Ticket{ID: 3}).Update("title", "secret").Error
	}, []routed{upd(3, 17)}},
	{"hard delete of a deleted row: no channel showed it", func(db *gorm.DB) error {
		return db.Unscoped().Delete(&Ticket{ID: 3}).Error
	}, []routed{{Type: "delete", PK: 3, Data: true, User: 17, Hard: true, Channels: []string{ticketName, ticketName + ":3"}}}},
	{"create of a deleted row: no channel shows it", func(db *gorm.DB) error {
		return db.Create(&Ticket{ID: 9, UserID: 17, Title: "archived", DeletedAt: gorm.DeletedAt{Time: time.Now(), Valid: true}}).Error
	}, []routed{{Type: "create", PK: 9, Data: true, User: 17, Channels: []string{ticketName, ticketName + ":9"}}}},
	{"upsert moves it", func(db *gorm.DB) error {
		return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Ticket{ID: 2, UserID: 18, Title: "b"}).Error
	}, []routed{upd(2, 18, "team"), enter(2, 18, "user:18"), leave(2, "user:17")}},
	{"in a transaction, moved twice", func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Model(&Ticket{ID: 1}).Update("user_id", 20).Error; err != nil {
				return err
			}
			return tx.Model(&Ticket{ID: 1}).Update("user_id", 17).Error
		})
	}, []routed{
		upd(1, 20, "team"), enter(1, 20, "user:20"), leave(1, "user:18"),
		upd(1, 17, "team"), enter(1, 17, "user:17"), leave(1, "user:20"),
	}},
}

// ticketOptions are the registrations every audience test runs with.
var ticketOptions = []struct {
	name string
	opts events.Options
}{
	{"whole rows", events.Options{Name: ticketName, Channels: ticketChannels}},
	{"ChannelFields", events.Options{Name: ticketName, Channels: ticketChannels, ChannelFields: []string{"UserID"}}},
}

func seedTickets(t testing.TB, db *gorm.DB) {
	t.Helper()
	if err := db.AutoMigrate(&Ticket{}); err != nil {
		t.Fatal(err)
	}
	for _, tk := range []Ticket{{UserID: 17, Title: "a"}, {UserID: 17, Title: "b"}, {UserID: 19, Title: "c"}} {
		if err := db.Create(&tk).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// TestAudienceMoves: an update that changes a row's channels sends
// update to the channels it stays in, enter (the row) to those it joins
// and leave (its key) to those it leaves; the model and record channels
// get update. Soft delete and restore take the row out of and back into
// every channel.
func TestAudienceMoves(t *testing.T) {
	for _, d := range allDialects {
		for _, o := range ticketOptions {
			t.Run(d.name+"/"+o.name, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				if err := e.p.Register(Ticket{}, o.opts); err != nil {
					t.Fatal(err)
				}
				seedTickets(t, e.db)
				e.rec.Reset()
				for _, s := range audienceSteps {
					if err := s.write(e.db); err != nil {
						t.Fatalf("%s: %v", s.name, err)
					}
					t.Log(s.name)
					expectRouted(t, e.rec, s.want...)
				}
			})
		}
	}
}

// TestAudienceTableExpression: an update through a table expression
// (an alias) runs as without the plugin; the plugin, which cannot read its
// rows apart from it, sends one bulk_update to the model channel.
func TestAudienceTableExpression(t *testing.T) {
	for _, d := range allDialects {
		for _, o := range ticketOptions {
			t.Run(d.name+"/"+o.name, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				if err := e.p.Register(Ticket{}, o.opts); err != nil {
					t.Fatal(err)
				}
				seedTickets(t, e.db)
				e.rec.Reset()
				if err := e.db.Model(&Ticket{}).Table("tickets AS t").Where("t.id = ?", 1).Update("user_id", 18).Error; err != nil {
					t.Fatal(err)
				}
				var tk Ticket
				if err := e.db.Session(&gorm.Session{NewDB: true}).First(&tk, 1).Error; err != nil || tk.UserID != 18 {
					t.Fatalf("ticket 1 %+v (%v), want user 18", tk, err)
				}
				expectRouted(t, e.rec, routed{Type: "bulk_update", PK: 1, Channels: []string{ticketName}})
			})
		}
	}
}

// TestAudienceBulk: above BulkLimit an update sends one bulk_update to
// the model channel only, as for any model; the user channels get
// nothing.
func TestAudienceBulk(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			if err := e.p.Register(Ticket{}, events.Options{Name: ticketName, Channels: ticketChannels, BulkLimit: 2}); err != nil {
				t.Fatal(err)
			}
			seedTickets(t, e.db)
			e.rec.Reset()
			if err := e.db.Model(&Ticket{}).Where("user_id > ?", 0).Update("user_id", 18).Error; err != nil {
				t.Fatal(err)
			}
			expectRouted(t, e.rec, routed{Type: "bulk_update", PK: 3, Channels: []string{ticketName}})
			// Within the limit, per row again.
			if err := e.db.Model(&Ticket{}).Where("id IN ?", []uint{1, 2}).Update("user_id", 17).Error; err != nil {
				t.Fatal(err)
			}
			expectRouted(t, e.rec,
				upd(1, 17, "team"), enter(1, 17, "user:17"), leave(1, "user:18"),
				upd(2, 17, "team"), enter(2, 17, "user:17"), leave(2, "user:18"))
		})
	}
}

// TestAudienceOutbox: in outbox mode the relay publishes the same events
// to the same channels.
func TestAudienceOutbox(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			rec := broker.NewRecorder(nil)
			ob := openOutbox(t, d.open(t), nil, telegraphy.Config{Broker: rec, Outbox: telegraphy.OutboxConfig{Enabled: true}})
			if err := ob.p.Register(Ticket{}, ticketOptions[1].opts); err != nil {
				t.Fatal(err)
			}
			seedTickets(t, ob.db)
			waitFor(t, "the creates", func() bool { return rec.Len() == 3 })
			rec.Reset()
			var want []routed
			for _, s := range audienceSteps {
				if err := s.write(ob.db); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				want = append(want, s.want...)
			}
			waitFor(t, "the events", func() bool { return rec.Len() >= len(want) })
			expectRouted(t, rec, want...)
		})
	}
}

// TestChannelFieldsRegistration: a ChannelFields name the model does not
// have, or ChannelFields without Channels, fail Register with an error
// naming the problem.
func TestChannelFieldsRegistration(t *testing.T) {
	p := telegraphy.New(telegraphy.Config{Broker: broker.NewMemory()})
	for _, c := range []struct {
		opts events.Options
		is   error
		says string
	}{
		{events.Options{Channels: ticketChannels, ChannelFields: []string{"Owner"}}, events.ErrUnknownField, `"Owner" (ChannelFields)`},
		{events.Options{ChannelFields: []string{"UserID"}}, events.ErrChannelFields, "Ticket"},
	} {
		err := p.Register(Ticket{}, c.opts)
		if err == nil || !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Register(%+v) = %v, want %v saying %s", c.opts.ChannelFields, err, c.is, c.says)
		}
	}
	for _, names := range [][]string{{"UserID"}, {"user_id"}, {"Title", "deleted_at"}} {
		p := telegraphy.New(telegraphy.Config{Broker: broker.NewMemory()})
		if err := p.Register(Ticket{}, events.Options{Channels: ticketChannels, ChannelFields: names}); err != nil {
			t.Errorf("ChannelFields %v: %v", names, err)
		}
	}
}

// page is what a client following one user channel shows, applying
// events as the JavaScript Collection does: by key, dropping an event
// older than the row it holds or not newer than the row's leave.
type page struct {
	rows map[float64]map[string]any
	ver  map[float64]float64 // version of the row held
	dead map[float64]float64 // version of its leave or delete
}

func newPage() *page {
	return &page{rows: map[float64]map[string]any{}, ver: map[float64]float64{}, dead: map[float64]float64{}}
}

func (p *page) apply(t testing.TB, e events.Event) {
	k, _ := e.Meta.PK.(float64)
	v, _ := e.Meta.Version.(float64)
	if held, has := p.ver[k]; has && v < held {
		return
	} else if d, gone := p.dead[k]; !has && gone && v <= d {
		return
	}
	switch e.Meta.EventType {
	case "create", "update", "enter":
		var row map[string]any
		if err := json.Unmarshal(e.Data, &row); err != nil {
			t.Fatal(err)
		}
		p.rows[k], p.ver[k] = row, v
	case "delete", "leave":
		delete(p.rows, k)
		delete(p.ver, k)
		p.dead[k] = v
	default:
		t.Fatalf("unexpected %s event on a user channel", e.Meta.EventType)
	}
}

// TestAudienceConcurrent: writers move tickets between users while
// others update several tickets at once by condition, on PostgreSQL
// (READ COMMITTED) and MariaDB. Each user's page, built only from the
// events of its channel in the order the broker got them, ends up
// showing exactly that user's tickets as the database holds them. The
// same with the condition ending in a "--" comment, which must not hide
// the lock the plugin's read before the write takes.
func TestAudienceConcurrent(t *testing.T) {
	const tickets, users = 12, 4
	movers, updaters, rounds := 4, 2, 150
	if testing.Short() {
		rounds = 30
	}
	for _, d := range allDialects[1:] {
		for _, c := range []struct{ name, cond string }{{"plain", "id IN ?"}, {"comment", "id IN ? -- tickets picked at random"}} {
			cond := c.cond
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				opts := events.Options{Name: ticketName, Channels: func(m any) []string {
					return []string{fmt.Sprintf("user:%d", m.(*Ticket).UserID)}
				}, ChannelFields: []string{"UserID"}, Version: "Rev"}
				if err := e.p.Register(Ticket{}, opts); err != nil {
					t.Fatal(err)
				}
				if err := e.db.AutoMigrate(&Ticket{}); err != nil {
					t.Fatal(err)
				}
				pages := map[string]*page{}
				for u := 1; u <= users; u++ {
					pages[fmt.Sprintf("user:%d", u)] = newPage()
				}
				for i := 1; i <= tickets; i++ {
					tk := Ticket{UserID: uint(i%users + 1), Title: "t0", Rev: 1}
					if err := e.db.Create(&tk).Error; err != nil {
						t.Fatal(err)
					}
				}
				// The pages render the rows first, then follow the events
				// published after.
				for _, ev := range e.rec.Events() {
					pages[ev.Channels[2]].apply(t, ev)
				}
				e.rec.Reset()

				var wg sync.WaitGroup
				errs := make(chan error, movers+updaters)
				retry := func(write func() error) error {
					for {
						err := write()
						if err == nil || !retryable(err) {
							return err
						}
					}
				}
				for w := 0; w < movers+updaters; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						rnd := rand.New(rand.NewPCG(uint64(w), 16))
						for r := 0; r < rounds; r++ {
							var err error
							if w < movers {
								id, u := uint(rnd.IntN(tickets)+1), rnd.IntN(users)+1
								err = retry(func() error {
									return e.db.Model(&Ticket{ID: id}).Updates(map[string]any{"user_id": u, "rev": gorm.Expr("rev + 1")}).Error
								})
							} else {
								ids := []uint{uint(rnd.IntN(tickets) + 1), uint(rnd.IntN(tickets) + 1), uint(rnd.IntN(tickets) + 1)}
								title := fmt.Sprintf("w%d-%d", w, r)
								err = retry(func() error {
									return e.db.Model(&Ticket{}).Where(cond, ids).Updates(map[string]any{"title": title, "rev": gorm.Expr("rev + 1")}).Error
								})
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}(w)
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				var moves int
				for _, ev := range e.rec.Events() {
					if strings.HasPrefix(ev.Meta.EventType, "bulk_") {
						t.Fatalf("bulk event %s: every row was read before its write", ev.Data)
					}
					if ev.Meta.EventType == "enter" {
						moves++
					}
					for _, c := range ev.Channels {
						if p := pages[c]; p != nil {
							p.apply(t, ev)
						}
					}
				}
				if moves == 0 {
					t.Fatal("no ticket moved")
				}
				var all []Ticket
				if err := e.db.Order("id").Find(&all).Error; err != nil {
					t.Fatal(err)
				}
				for name, p := range pages {
					want := map[float64]map[string]any{}
					for _, tk := range all {
						if fmt.Sprintf("user:%d", tk.UserID) == name {
							want[float64(tk.ID)] = map[string]any{"id": float64(tk.ID), "user_id": float64(tk.UserID),
								"title": tk.Title, "rev": float64(tk.Rev), "deleted_at": nil}
						}
					}
					if !reflect.DeepEqual(p.rows, want) {
						t.Errorf("%s shows %v\nthe database holds %v", name, p.rows, want)
					}
				}
				t.Logf("%d tickets moved", moves)
			})
		}
	}
}

// retryable reports whether err is a deadlock or serialization failure
// that the database asks the writer to retry.
func retryable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Deadlock") || strings.Contains(s, "deadlock") || strings.Contains(s, "40001") || strings.Contains(s, "40P01")
}

// GoldenTask moves between users' channels.
type GoldenTask struct {
	ID       uint   `json:"id"`
	Assignee string `json:"assignee"`
	Rev      int    `json:"rev"`
}

// TestGoldenEnterLeave: the JSON of the update, enter and leave events of
// a row moved from one user to another is the one in testdata/events.
func TestGoldenEnterLeave(t *testing.T) {
	e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
	if err := e.db.AutoMigrate(&GoldenTask{}); err != nil {
		t.Fatal(err)
	}
	err := e.p.Register(GoldenTask{}, events.Options{Name: "tasks.Task", Version: "Rev", ChannelFields: []string{"Assignee"},
		Channels: func(m any) []string { return []string{"user:" + m.(*GoldenTask).Assignee} }})
	if err != nil {
		t.Fatal(err)
	}
	task := GoldenTask{Assignee: "ann", Rev: 1}
	if err := e.db.Create(&task).Error; err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	if err := e.db.Model(&task).Updates(GoldenTask{Assignee: "bob", Rev: 2}).Error; err != nil {
		t.Fatal(err)
	}
	msgs := e.rec.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3:\n%s", len(msgs), e.rec)
	}
	for i, name := range []string{"move_update", "enter", "leave"} {
		got := volatile.ReplaceAll(msgs[i].Data, []byte(goldenEventStamp))
		checkGolden(t, "events/"+name+".json", append(got, '\n'))
	}
}

// TestAudienceUnseenRow: on PostgreSQL at READ COMMITTED, a row that
// comes to match an update's condition in a transaction committed between
// the plugin's read and the statement is changed by the statement with a
// past the read did not see; the statement then sends its bulk_update to
// the model channel, never a guessed enter or leave.
func TestAudienceUnseenRow(t *testing.T) {
	e := setup(t, allDialects[1], nil, telegraphy.Config{})
	if err := e.p.Register(Ticket{}, ticketOptions[0].opts); err != nil {
		t.Fatal(err)
	}
	seedTickets(t, e.db)
	var once sync.Once
	err := e.db.Callback().Update().After("telegraphy:before_update").Before("gorm:update").
		Register("test:interleave", func(db *gorm.DB) {
			if db.Statement.Schema == nil || db.Statement.Table != "tickets" {
				return
			}
			once.Do(func() {
				// Another connection, committed before the statement runs.
				if err := e.db.Create(&Ticket{UserID: 17, Title: "late"}).Error; err != nil {
					_ = db.AddError(err)
				}
			})
		})
	if err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	if err := e.db.Model(&Ticket{}).Where("user_id = ?", 17).Update("user_id", 18).Error; err != nil {
		t.Fatal(err)
	}
	evs := e.rec.Events()
	if len(evs) != 2 || evs[0].Meta.EventType != "create" {
		t.Fatalf("want the late create and one bulk_update, got %d events:\n%s", len(evs), e.rec)
	}
	checkRouted(t, evs[1:], []routed{{Type: "bulk_update", PK: 3, Channels: []string{ticketName}}})
	// Without a concurrent writer, per-row events again.
	if err := e.db.Model(&Ticket{}).Where("user_id = ?", 18).Update("user_id", 17).Error; err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	if err := e.db.Model(&Ticket{}).Where("title = ?", "late").Update("user_id", 19).Error; err != nil {
		t.Fatal(err)
	}
	expectRouted(t, e.rec, upd(4, 19, "team"), enter(4, 19, "user:19"), leave(4, "user:17"))
}

// TestAudienceNamingStrategy: the read before an update names the
// columns as the database's naming strategy does, not as the default
// one would.
func TestAudienceNamingStrategy(t *testing.T) {
	naming := schema.NamingStrategy{NameReplacer: strings.NewReplacer("UserID", "OwnerID")}
	for _, d := range allDialects {
		for _, o := range ticketOptions {
			t.Run(d.name+"/"+o.name, func(t *testing.T) {
				e := setup(t, d, &gorm.Config{NamingStrategy: naming}, telegraphy.Config{})
				if err := e.p.Register(Ticket{}, o.opts); err != nil {
					t.Fatal(err)
				}
				seedTickets(t, e.db)
				if !e.db.Migrator().HasColumn(&Ticket{}, "owner_id") {
					t.Fatal("the naming strategy did not apply: no column owner_id")
				}
				e.rec.Reset()
				if err := e.db.Model(&Ticket{ID: 1}).Update("UserID", 18).Error; err != nil {
					t.Fatal(err)
				}
				expectRouted(t, e.rec, upd(1, 18, "team"), enter(1, 18, "user:18"), leave(1, "user:17"))
				if err := e.db.Model(&Ticket{}).Where(&Ticket{UserID: 17}).Updates(&Ticket{UserID: 19}).Error; err != nil {
					t.Fatal(err)
				}
				expectRouted(t, e.rec, upd(2, 19, "team"), enter(2, 19, "user:19"), leave(2, "user:17"))
				// A title change moves nothing.
				if err := e.db.Model(&Ticket{ID: 3}).Update("Title", "z").Error; err != nil {
					t.Fatal(err)
				}
				expectRouted(t, e.rec, upd(3, 19, "user:19", "team"))
			})
		}
	}
}
