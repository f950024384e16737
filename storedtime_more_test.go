package telegraphy_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

func stDialect(name string) dialect {
	for _, d := range allDialects {
		if d.name == name {
			return d
		}
	}
	panic(name)
}

// stCompare reads the table of T back (unscoped, by id) and compares, for
// every JSON key of the row, the event's value with the row's, as times
// when both parse as times, else as JSON. It returns the mismatches.
func stCompare[T any](t *testing.T, e env) []string {
	t.Helper()
	var rows []T
	if err := e.db.Session(&gorm.Session{NewDB: true}).Unscoped().Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	got := e.rec.Events()
	if len(rows) != len(got) {
		t.Fatalf("%d rows, %d events:%s", len(rows), len(got), describe(got))
	}
	var bad []string
	for i, ev := range got {
		if ev.Meta.EventType != "create" {
			t.Fatalf("event %d:%s", i, describe(got[i:i+1]))
		}
		var announced map[string]json.RawMessage
		if err := json.Unmarshal(ev.Data, &announced); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(rows[i])
		var stored map[string]json.RawMessage
		_ = json.Unmarshal(b, &stored)
		for k, sv := range stored {
			av := announced[k]
			var nt struct {
				Time  time.Time
				Valid *bool
			}
			if json.Unmarshal(sv, &nt) == nil && nt.Valid != nil {
				sv = json.RawMessage("null")
				if *nt.Valid {
					sv, _ = json.Marshal(nt.Time)
				}
			}
			var at, st time.Time
			if json.Unmarshal(av, &at) == nil && json.Unmarshal(sv, &st) == nil {
				if !at.Equal(st) {
					bad = append(bad, fmt.Sprintf("row %d %s: announced %s stored %s", i, k, av, sv))
				}
				continue
			}
			if string(av) != string(sv) {
				bad = append(bad, fmt.Sprintf("row %d %s: announced %s stored %s", i, k, av, sv))
			}
		}
	}
	return bad
}

// ---------------------------------------------------------------------
// PostgreSQL: random instants against the real server.

type StPgRand struct {
	ID     uint           `json:"id"`
	Def    time.Time      `json:"def"`
	P0     time.Time      `json:"p0" gorm:"type:timestamptz(0)"`
	P1     time.Time      `json:"p1" gorm:"precision:1"`
	P2     time.Time      `json:"p2" gorm:"precision:2"`
	P3     time.Time      `json:"p3" gorm:"precision:3"`
	P4     time.Time      `json:"p4" gorm:"precision:4"`
	P5     time.Time      `json:"p5" gorm:"precision:5"`
	Tz3    time.Time      `json:"tz3" gorm:"type:timestamptz(3)"`
	Naive  time.Time      `json:"naive" gorm:"type:timestamp"`
	Naive2 time.Time      `json:"naive2" gorm:"type:timestamp(2)"`
	Naive0 time.Time      `json:"naive0" gorm:"type:timestamp(0) without time zone"`
	WTZ    time.Time      `json:"wtz" gorm:"type:timestamp with time zone"`
	WTZ4   time.Time      `json:"wtz4" gorm:"type:timestamp(4) with time zone"`
	Ptr    *time.Time     `json:"ptr" gorm:"precision:3"`
	Null   sql.NullTime   `json:"null" gorm:"precision:2"`
	Del    gorm.DeletedAt `json:"del" gorm:"precision:4"`
}

func stRandTime(r *rand.Rand, zones []*time.Location) time.Time {
	var base time.Time
	switch r.Intn(4) {
	case 0: // around 2000-01-01
		base = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int63n(int64(4*time.Second))) - 2*time.Second)
	case 1: // around 1970
		base = time.Unix(0, 0).Add(time.Duration(r.Int63n(int64(4*time.Second))) - 2*time.Second)
	default:
		base = time.Unix(r.Int63n(int64(400*365*86400))-int64(200*365*86400), 0)
	}
	ns := r.Intn(1e9)
	switch r.Intn(4) {
	case 0:
		ns = ns / 1000 * 1000 // whole µs
	case 1:
		ns = ns/1000*1000 + 500 // µs and a half
	case 2:
		ns = ns/100_000*100_000 + 50_000 // the half of a 0.1 ms
	}
	t := time.Unix(base.Unix(), int64(ns))
	return t.In(zones[r.Intn(len(zones))])
}

func TestStoredTimesPostgresRandomTimes(t *testing.T) {
	// Zones whose offsets are whole minutes at any date (no LMT).
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("IST", 5*3600+1800), time.FixedZone("neg", -9*3600-45*60)}
	stPostgresRandom(t, zones, false, false)
	// Without a zoned time in a timestamp column the plugin computes every
	// stored value (no read back).
	stPostgresRandom(t, zones, false, true)
}

// TestStoredTimesPostgresTimestampSimpleProtocol: with PreferSimpleProtocol a
// `timestamp` column keeps the UTC wall clock, not the struct's.
func TestStoredTimesPostgresTimestampSimpleProtocol(t *testing.T) {
	zones := []*time.Location{time.FixedZone("IST", 5*3600+1800)}
	stPostgresRandom(t, zones, true, false)
}

// TestStoredTimesPostgresZoneWithSeconds: a time in a zone whose offset has
// seconds (Africa/Monrovia until 1972: -00:44:30; Europe/Amsterdam until
// 1937: +00:19:32) is announced at its instant (in UTC: RFC 3339, as
// encoding/json writes it, drops an offset's seconds).
func TestStoredTimesPostgresZoneWithSeconds(t *testing.T) {
	// Their offsets then, as fixed zones: no time zone database needed.
	monrovia := time.FixedZone("MMT", -(44*60 + 30))
	amsterdam := time.FixedZone("NST", 60*60+19*60+32)
	e := setup(t, stDialect("postgres"), nil, telegraphy.Config{})
	addModel(t, e, &StPgRand{}, events.Options{Name: "stpgrand"})
	at := time.Date(1971, 6, 1, 12, 0, 0, 0, monrovia)
	nl := time.Date(1930, 6, 1, 12, 0, 0, 0, amsterdam)
	given := &StPgRand{Def: at, P3: nl, Ptr: &at}
	if err := e.db.Create(given).Error; err != nil {
		t.Fatal(err)
	}
	stReport(t, stCompare[StPgRand](t, e))
}

// stPostgresRandom creates 200 rows of random times in zones and compares
// the events with the rows; naiveUTC gives the columns without a time zone
// UTC times only.
func stPostgresRandom(t *testing.T, zones []*time.Location, simple, naiveUTC bool) {
	{
		t.Run(fmt.Sprintf("simple=%v/naiveUTC=%v", simple, naiveUTC), func(t *testing.T) {
			d := dialect{"postgres", func(t testing.TB) gorm.Dialector {
				return postgres.New(postgres.Config{DSN: testenv.PostgresDSN(t), PreferSimpleProtocol: simple})
			}}
			e := setup(t, d, nil, telegraphy.Config{})
			addModel(t, e, &StPgRand{}, events.Options{Name: "stpgrand"})
			r := rand.New(rand.NewSource(42))
			naive := func() time.Time {
				if naiveUTC {
					return stRandTime(r, zones).UTC()
				}
				return stRandTime(r, zones)
			}
			var given []*StPgRand
			for range 200 {
				p := stRandTime(r, zones)
				given = append(given, &StPgRand{
					Def: stRandTime(r, zones), P0: stRandTime(r, zones), P1: stRandTime(r, zones),
					P2: stRandTime(r, zones), P3: stRandTime(r, zones), P4: stRandTime(r, zones),
					P5: stRandTime(r, zones), Tz3: stRandTime(r, zones), Naive: naive(),
					Naive2: naive(), Naive0: naive(), WTZ: stRandTime(r, zones),
					WTZ4: stRandTime(r, zones), Ptr: &p,
					Null: sql.NullTime{Time: stRandTime(r, zones), Valid: r.Intn(2) == 0},
					Del:  gorm.DeletedAt{Time: stRandTime(r, zones), Valid: r.Intn(2) == 0},
				})
			}
			if err := e.db.CreateInBatches(given, 50).Error; err != nil {
				t.Fatal(err)
			}
			stReport(t, stCompare[StPgRand](t, e))
		})
	}
}

// stReport fails t with the number of mismatches and the first few.
func stReport(t *testing.T, bad []string) {
	t.Helper()
	if len(bad) == 0 {
		return
	}
	n := min(len(bad), 4)
	t.Errorf("%d mismatches between events and rows, e.g.:\n  %s", len(bad), strings.Join(bad[:n], "\n  "))
}

// ---------------------------------------------------------------------
// MySQL/MariaDB: the read-back rule.

// StMyTyped has a time column whose precision its `type` tag gives, as
// docs/delivery.md says the plugin reads it.
type StMyTyped struct {
	ID    uint       `json:"id"`
	Micro time.Time  `json:"micro" gorm:"type:datetime(6)"`
	Whole *time.Time `json:"whole" gorm:"type:datetime"`
}

// TestStoredTimesMySQLTypeTagPrecision: times finer than a `type:datetime(N)`
// column are announced as stored (GORM sets such a field's DataType to the
// tag, "datetime(6)", not schema.Time).
func TestStoredTimesMySQLTypeTagPrecision(t *testing.T) {
	e := setup(t, stDialect("mysql"), nil, telegraphy.Config{})
	addModel(t, e, &StMyTyped{}, events.Options{Name: "stmytyped"})
	fine := time.Date(2026, 12, 2, 23, 4, 5, 123_456_789, time.UTC)
	if err := e.db.Create(&StMyTyped{Micro: fine, Whole: &fine}).Error; err != nil {
		t.Fatal(err)
	}
	stReport(t, stCompare[StMyTyped](t, e))
}

type StMyAuto struct {
	ID        uint      `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TestStoredTimesMySQLNowFunc: with gorm.Config.NowFunc set (the mysql
// dialector then does not round it), GORM's own timestamps have
// nanoseconds the datetime(3) column does not keep: they are announced as
// stored although the plugin decides before gorm:create sets them.
func TestStoredTimesMySQLNowFunc(t *testing.T) {
	now := time.Date(2026, 12, 2, 23, 4, 5, 123_456_789, time.UTC)
	e := setup(t, stDialect("mysql"), &gorm.Config{NowFunc: func() time.Time { return now }}, telegraphy.Config{})
	addModel(t, e, &StMyAuto{}, events.Options{Name: "stmyauto"})
	if err := e.db.Create(&StMyAuto{}).Error; err != nil {
		t.Fatal(err)
	}
	stReport(t, stCompare[StMyAuto](t, e))
}

// ---------------------------------------------------------------------
// PostgreSQL: tags the arithmetic misreads.

// StPgTags: `type` with `precision` (GORM creates the type tag's column
// and ignores precision), `type:time` (GORM's postgres dialector makes it
// timestamptz), a time kept as JSON text by a serializer: each announced
// as stored.
type StPgTags struct {
	ID     uint      `json:"id"`
	TzPrec time.Time `json:"tz_prec" gorm:"type:timestamptz;precision:3"`
	Time   time.Time `json:"time" gorm:"type:time"`
	JSON   time.Time `json:"json" gorm:"serializer:json"`
}

func TestStoredTimesPostgresTags(t *testing.T) {
	e := setup(t, stDialect("postgres"), nil, telegraphy.Config{})
	addModel(t, e, &StPgTags{}, events.Options{Name: "stpgtags"})
	var typ []string
	e.db.Raw(`SELECT column_name || ' ' || format_type(atttypid, atttypmod) FROM information_schema.columns c
		JOIN pg_attribute a ON a.attname = c.column_name AND a.attrelid = 'st_pg_tags'::regclass
		WHERE table_name = 'st_pg_tags' AND table_schema = current_schema() ORDER BY ordinal_position`).Scan(&typ)
	t.Logf("columns: %v", typ)
	fine := time.Date(2026, 12, 2, 23, 4, 5, 123_456_789, time.UTC)
	if err := e.db.Create(&StPgTags{TzPrec: fine, Time: fine, JSON: fine}).Error; err != nil {
		t.Fatal(err)
	}
	stReport(t, stCompare[StPgTags](t, e))
}

// ---------------------------------------------------------------------
// The caller's structs, and GORM's behaviour, with the plugin installed.

type StInner struct {
	Deep  *time.Time `json:"deep"`
	DeepV time.Time  `json:"deep_v" gorm:"precision:2"`
}

type StMid struct {
	*StInner
	MidAt time.Time `json:"mid_at"`
}

type StNamed struct {
	T *time.Time   `json:"t"`
	N sql.NullTime `json:"n"`
}

type StNest struct {
	ID uint      `json:"id"`
	At time.Time `json:"at"`
	*StMid
	Named  StNamed  `json:"named" gorm:"embedded;embeddedPrefix:n_"`
	NamedP *StNamed `json:"named_p" gorm:"embedded;embeddedPrefix:p_"`
}

func stNests() []*StNest {
	a := time.Date(2026, 12, 2, 23, 4, 5, 123_456_789, time.FixedZone("x", 3600))
	b := a.Add(987 * time.Nanosecond)
	shared := &StMid{StInner: &StInner{Deep: &a, DeepV: b}, MidAt: b}
	return []*StNest{
		{At: a, StMid: shared, Named: StNamed{T: &b, N: sql.NullTime{Time: a, Valid: true}}, NamedP: &StNamed{T: &a}},
		{At: b, StMid: shared},           // the same embedded pointer as the first
		{At: a, StMid: &StMid{MidAt: a}}, // a nil pointer on the way
		{At: a},
	}
}

// TestStoredTimesCallerStructs: creating with and without the plugin leaves the
// caller's structs (and what they point to) the same.
func TestStoredTimesCallerStructs(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			plain := openDB(t, d.open(t), nil)
			if err := plain.Migrator().DropTable(&StNest{}); err != nil {
				t.Fatal(err)
			}
			if err := plain.AutoMigrate(&StNest{}); err != nil {
				t.Fatal(err)
			}
			want := stNests()
			if err := plain.Create(want).Error; err != nil {
				t.Fatal(err)
			}
			e := setup(t, d, nil, telegraphy.Config{})
			addModel(t, e, &StNest{}, events.Options{Name: "stnest"})
			given := stNests()
			mid, inner, deep := given[0].StMid, given[0].StMid.StInner, given[0].StMid.StInner.Deep
			if err := e.db.Create(given).Error; err != nil {
				t.Fatal(err)
			}
			if given[0].StMid != mid || given[0].StMid.StInner != inner || given[0].StMid.StInner.Deep != deep {
				t.Errorf("pointers replaced in the caller's struct")
			}
			for i := range given {
				if !reflect.DeepEqual(given[i], want[i]) {
					gj, _ := json.Marshal(given[i])
					wj, _ := json.Marshal(want[i])
					t.Errorf("struct %d after Create\n with plugin: %s\n without:     %s", i, gj, wj)
				}
			}
			var rows []StNest
			if err := e.db.Session(&gorm.Session{NewDB: true}).Order("id").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			for i, ev := range e.rec.Events() {
				var got struct {
					At    time.Time  `json:"at"`
					Deep  *time.Time `json:"deep"`
					DeepV time.Time  `json:"deep_v"`
					MidAt time.Time  `json:"mid_at"`
				}
				if err := json.Unmarshal(ev.Data, &got); err != nil {
					t.Fatal(err)
				}
				r := rows[i]
				var rd *time.Time
				var rdv, rmid time.Time
				if r.StMid != nil {
					rmid = r.StMid.MidAt
					if r.StMid.StInner != nil {
						rd, rdv = r.StMid.StInner.Deep, r.StMid.StInner.DeepV
					}
				}
				if !got.At.Equal(r.At) || !got.DeepV.Equal(rdv) || !got.MidAt.Equal(rmid) || (got.Deep == nil) != (rd == nil) || rd != nil && !got.Deep.Equal(*rd) {
					t.Errorf("event %d: %s\nrow: at %v deep %v deep_v %v mid_at %v", i, ev.Data, r.At, rd, rdv, rmid)
				}
			}
		})
	}
}

// TestStoredTimesCallerStructNilEmbedded: the caller's struct is not
// changed, also when no time needs changing (times in whole microseconds
// on PostgreSQL, no copy made): encoding the event leaves nil embedded
// pointers nil, as GORM alone does.
func TestStoredTimesCallerStructNilEmbedded(t *testing.T) {
	e := setup(t, stDialect("postgres"), nil, telegraphy.Config{})
	addModel(t, e, &StNest{}, events.Options{Name: "stnest"})
	given := &StNest{At: time.Date(2026, 12, 2, 23, 4, 5, 123_456_000, time.UTC)}
	if err := e.db.Create(given).Error; err != nil {
		t.Fatal(err)
	}
	if given.StMid != nil || given.NamedP != nil {
		t.Errorf("Create allocated the caller's nil embedded pointers: StMid=%+v NamedP=%+v", given.StMid, given.NamedP)
	}
	// With a time to round, the event is encoded from a copy: left alone.
	given = &StNest{At: time.Date(2026, 12, 2, 23, 4, 5, 123_456_789, time.UTC)}
	if err := e.db.Create(given).Error; err != nil {
		t.Fatal(err)
	}
	if given.StMid != nil || given.NamedP != nil {
		t.Errorf("(rounded) Create allocated the caller's nil embedded pointers")
	}
}

// TestStoredTimesDatetimeDigitsCacheLeak: deciding whether a MySQL create
// is read back keeps nothing of the database: a *gorm.DB opened on MySQL
// that creates a model with a time field is collected once closed and
// dropped, as one that creates a model without.
func TestStoredTimesDatetimeDigitsCacheLeak(t *testing.T) {
	for _, withTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("time=%v", withTime), func(t *testing.T) { stLeak(t, withTime) })
	}
}

func stLeak(t *testing.T, withTime bool) {
	var collected atomic.Int32
	const n = 5
	for range n {
		func() {
			dl := mysql.Open(testenv.MySQLDSN(t))
			runtime.SetFinalizer(dl.(*mysql.Dialector), func(*mysql.Dialector) { collected.Add(1) })
			db := openDB(t, dl, nil, &StMyAuto{}, &Order{})
			p := telegraphy.New(telegraphy.Config{Broker: broker.NewRecorder(nil)})
			if err := p.Register(&Order{}, events.Options{}); err != nil {
				t.Fatal(err)
			}
			if err := p.Register(&StMyAuto{}, events.Options{}); err != nil {
				t.Fatal(err)
			}
			if err := db.Use(p); err != nil {
				t.Fatal(err)
			}
			var err error
			if withTime {
				err = db.Create(&StMyAuto{}).Error
			} else {
				err = db.Create(&Order{Status: "x"}).Error
			}
			if err != nil {
				t.Fatal(err)
			}
			sqlDB, _ := db.DB()
			_ = sqlDB.Close()
		}()
	}
	for range 20 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if c := collected.Load(); c != n {
		t.Errorf("%d of %d dropped MySQL dialectors collected", c, n)
	}
}

type StMyRand struct {
	ID   uint           `json:"id"`
	Def  time.Time      `json:"def"`
	P0   time.Time      `json:"p0" gorm:"precision:0"`
	P1   time.Time      `json:"p1" gorm:"precision:1"`
	P6   *time.Time     `json:"p6" gorm:"precision:6"`
	Null sql.NullTime   `json:"null" gorm:"precision:2"`
	Del  gorm.DeletedAt `json:"del" gorm:"precision:4"`
}

// TestStoredTimesMySQLRandomTimes: fields without a `type` tag, GORM's default and
// a configured DefaultDatetimePrecision.
func TestStoredTimesMySQLRandomTimes(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("IST", 5*3600+1800)}
	for _, prec := range []int{-1, 0, 6} {
		t.Run(fmt.Sprint(prec), func(t *testing.T) {
			d := dialect{"mysql", func(t testing.TB) gorm.Dialector {
				c := mysql.Config{DSN: testenv.MySQLDSN(t)}
				if prec >= 0 {
					c.DefaultDatetimePrecision = &prec
				}
				return mysql.New(c)
			}}
			e := setup(t, d, nil, telegraphy.Config{})
			addModel(t, e, &StMyRand{}, events.Options{Name: "stmyrand"})
			r := rand.New(rand.NewSource(7))
			rt := func() time.Time {
				tt := stRandTime(r, zones)
				for tt.Year() < 1971 {
					tt = tt.AddDate(50, 0, 0)
				}
				for tt.Year() > 2037 {
					tt = tt.AddDate(-50, 0, 0)
				}
				return tt
			}
			for i := range 100 {
				p := rt()
				s := &StMyRand{Def: rt(), P0: rt(), P1: rt(), Null: sql.NullTime{Time: rt(), Valid: r.Intn(2) == 0},
					Del: gorm.DeletedAt{Time: rt(), Valid: r.Intn(2) == 0}}
				if r.Intn(2) == 0 {
					s.P6 = &p
				}
				if i%3 == 0 { // times the columns keep
					s = &StMyRand{Def: s.Def.Truncate(time.Second), P0: s.P0.Truncate(time.Second), P1: s.P1.Truncate(time.Second)}
				}
				if err := e.db.Create(s).Error; err != nil {
					t.Fatal(err)
				}
			}
			stReport(t, stCompare[StMyRand](t, e))
		})
	}
}

// TestStoredTimesValueSlice: a slice of struct values (not pointers).
func TestStoredTimesValueSlice(t *testing.T) {
	e := setup(t, stDialect("postgres"), nil, telegraphy.Config{})
	addModel(t, e, &StPgRand{}, events.Options{Name: "stpgrand"})
	a := time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("z", -3600))
	given := []StPgRand{{Def: a, P0: a, P3: a, Naive: a, Ptr: &a}, {Def: a, Null: sql.NullTime{Time: a, Valid: true}}}
	if err := e.db.Create(&given).Error; err != nil {
		t.Fatal(err)
	}
	if !given[0].Def.Equal(a) || given[0].Def.Location() != a.Location() || given[0].Ptr != &a || !a.Equal(time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("z", -3600))) {
		t.Errorf("caller's values changed: %+v", given[0])
	}
	stReport(t, stCompare[StPgRand](t, e))
}

// Span is embedded twice with a prefix: its columns have one JSON name
// each, twice.
type Span struct {
	From time.Time `json:"from"`
	Note string    `json:"note"`
}

type Trip struct {
	ID  uint `json:"id"`
	Out Span `json:"out" gorm:"embedded;embeddedPrefix:out_"`
	Ret Span `json:"ret" gorm:"embedded;embeddedPrefix:ret_"`
}

// TestEmbeddedTwiceNoDuplicateKeys: the data of an event has no duplicate
// key (a JSON parser keeps the last one, losing the other column): the
// second column of a JSON name goes by its column name.
func TestEmbeddedTwiceNoDuplicateKeys(t *testing.T) {
	e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
	addModel(t, e, &Trip{}, events.Options{Name: "trips"})
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if err := e.db.Create(&Trip{Out: Span{From: at, Note: "out"}, Ret: Span{From: at.Add(time.Hour), Note: "back"}}).Error; err != nil {
		t.Fatal(err)
	}
	got := e.rec.Events()
	if len(got) != 1 {
		t.Fatalf("%d events:%s", len(got), describe(got))
	}
	dec := json.NewDecoder(strings.NewReader(string(got[0].Data)))
	keys := map[string]int{}
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys[k.(string)]++
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"id": 1, "from": 1, "note": 1, "ret_from": 1, "ret_note": 1}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("data %s: keys %v, want %v", got[0].Data, keys, want)
	}
}
