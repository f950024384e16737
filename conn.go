package telegraphy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"
	"weak"

	"github.com/telegraphy-go/telegraphy/broker"
	"gorm.io/gorm"
)

// Commits are followed below GORM, in database/sql's driver layer: GORM
// has no commit callback and *sql.Tx no hook, and the plugin must leave
// db.ConnPool and every transaction's Statement.ConnPool of the types GORM
// gave them (*sql.DB, *sql.Tx, *gorm.PreparedStmtDB, *gorm.PreparedStmtTX,
// or another plugin's wrapper). Initialize installs a driver.Connector on
// the DB's *sql.DB that wraps each driver connection it opens; a
// transaction begun on such a connection (by GORM, by database/sql or by
// any library) is a *txn, whose Commit publishes the events buffered for
// it and whose Rollback drops them. A statement finds the *txn it runs in
// by sending probeQuery through its own connection pool: the wrapped
// driver connection answers it without a round trip to the server.

// probeQuery is the statement the plugin sends through a statement's
// connection to learn which driver connection and transaction it runs on.
// A wrapped connection answers it itself; an unwrapped one would send it
// to the server, where it is an empty statement.
const probeQuery = "/* telegraphy: which transaction */"

type probeKey struct{}

// probe is filled by the wrapped driver connection that runs probeQuery
// with the probe in its context.
type probe struct {
	reached bool
	tx      *txn
}

// connector wraps the driver.Connector of a *sql.DB followed by the
// plugin. Driver returns the original driver, so sql.DB.Driver is
// unchanged.
type connector struct {
	driver.Connector
}

// Connect implements driver.Connector.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	ci, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return wrapConn(ci), nil
}

// wrapConn wraps a driver connection. The wrapper implements
// driver.SessionResetter and driver.Validator only where ci does: database/sql
// keeps a connection after a rollback on a cancelled context only when it
// has both.
func wrapConn(ci driver.Conn) driver.Conn {
	c := &conn{Conn: ci}
	_, r := ci.(driver.SessionResetter)
	_, v := ci.(driver.Validator)
	switch {
	case r && v:
		return connRV{c}
	case r:
		return connR{c}
	case v:
		return connV{c}
	}
	return c
}

// wrapped is implemented by every wrapper of wrapConn.
type wrapped interface{ wrapped() *conn }

func (c *conn) wrapped() *conn { return c }

type connR struct{ *conn }

func (c connR) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

type connV struct{ *conn }

func (c connV) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

type connRV struct{ *conn }

func (c connRV) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c connRV) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

// Close implements io.Closer, which sql.DB.Close calls on its connector.
func (c *connector) Close() error {
	if cl, ok := c.Connector.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// conn is a driver connection opened through a followed *sql.DB.
// database/sql calls into a driver connection from one goroutine at a
// time, so tx needs no lock.
type conn struct {
	driver.Conn
	tx *txn // the transaction open on the connection, nil outside one

	// The statements the plugin's reads prepared on the connection
	// (readback.go), at most readBackCacheSize; uses counts their uses,
	// so that the least recently used is closed first.
	stmts map[string]*cachedStmt
	uses  uint64
}

// Close implements driver.Conn: it closes the plugin's statements, then
// the connection.
func (c *conn) Close() error {
	c.closeStmts()
	return c.Conn.Close()
}

// Unwrap returns the driver's own connection. A (*sql.Conn).Raw callback
// receives the plugin's wrapper; it may call
// driverConn.(interface{ Unwrap() driver.Conn }).Unwrap() to reach the
// driver's connection type (for example pgx's *stdlib.Conn).
func (c *conn) Unwrap() driver.Conn { return c.Conn }

// BeginTx implements driver.ConnBeginTx as database/sql would for the
// wrapped connection.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var inner driver.Tx
	var err error
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		inner, err = b.BeginTx(ctx, opts)
	} else {
		if opts.Isolation != driver.IsolationLevel(sql.LevelDefault) {
			return nil, errors.New("sql: driver does not support non-default isolation level")
		}
		if opts.ReadOnly {
			return nil, errors.New("sql: driver does not support read-only transactions")
		}
		//lint:ignore SA1019 database/sql does the same for a driver without ConnBeginTx
		inner, err = c.Conn.Begin()
		if err == nil && ctx.Err() != nil {
			_ = inner.Rollback()
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	t := &txn{Tx: inner, c: c, ctx: ctx, isolation: sql.IsolationLevel(opts.Isolation)}
	if prev := c.tx; prev != nil {
		if _, raw := prev.Tx.(*rawTx); raw {
			// A transaction begun with SQL is still open on the server:
			// PostgreSQL goes on in it, so its events go with this one.
			t.pending = prev.take()
		}
	}
	c.tx = t
	return t, nil
}

// ExecContext implements driver.ExecerContext: it answers probeQuery,
// follows savepoints in a transaction and passes everything else on.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if query == probeQuery {
		c.answer(ctx)
		return driver.RowsAffected(0), nil
	}
	if rb, ok := ctx.Value(readBackKey{}).(*readBack); ok {
		return c.readBack(ctx, query, args, rb)
	}
	if c.tx == nil {
		if beginsTx(query) {
			return c.rawBegin(ctx, func() (driver.Result, error) { return c.exec(ctx, query, args) })
		}
		return c.exec(ctx, query, args)
	}
	if op, name := savepointOp(query); op != spNone {
		res, err := c.exec(ctx, query, args)
		if err == nil {
			c.tx.savepoint(op, name)
		}
		return res, err
	}
	if rt, ok := c.tx.Tx.(*rawTx); ok {
		if end, chain := endsTx(query); end != txKeeps {
			return c.rawEnd(ctx, c.tx, rt, end, chain, query, args)
		}
	}
	return c.exec(ctx, query, args)
}

func (c *conn) answer(ctx context.Context) {
	if pr, ok := ctx.Value(probeKey{}).(*probe); ok {
		pr.reached, pr.tx = true, c.tx
	}
}

func (c *conn) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := c.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	//lint:ignore SA1019 database/sql does the same for older drivers
	if e, ok := c.Conn.(driver.Execer); ok {
		dargs, err := namedValueToValue(args)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return e.Exec(query, dargs)
	}
	return nil, driver.ErrSkip
}

// QueryContext implements driver.QueryerContext.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := c.Conn.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	//lint:ignore SA1019 database/sql does the same for older drivers
	if q, ok := c.Conn.(driver.Queryer); ok {
		dargs, err := namedValueToValue(args)
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return q.Query(query, dargs)
	}
	return nil, driver.ErrSkip
}

// PrepareContext implements driver.ConnPrepareContext. Statements are the
// driver's own, except probeQuery and savepoint statements, which the
// plugin must see run.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if query == probeQuery {
		return &probeStmt{c: c}, nil
	}
	si, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	if op, name := savepointOp(query); op != spNone {
		return &savepointStmt{Stmt: si, c: c, op: op, name: name}, nil
	}
	if beginsTx(query) {
		return &txStmt{Stmt: si, c: c, query: query}, nil
	}
	if end, chain := endsTx(query); end != txKeeps {
		return &txStmt{Stmt: si, c: c, query: query, end: end, chain: chain}, nil
	}
	return si, nil
}

// Ping implements driver.Pinger.
func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// CheckNamedValue implements driver.NamedValueChecker; driver.ErrSkip
// makes database/sql use its default conversion, as without the wrapper.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func namedValueToValue(named []driver.NamedValue) ([]driver.Value, error) {
	dargs := make([]driver.Value, len(named))
	for n, param := range named {
		if len(param.Name) > 0 {
			return nil, errors.New("sql: driver does not support the use of Named Parameters")
		}
		dargs[n] = param.Value
	}
	return dargs, nil
}

// probeStmt answers probeQuery when a connection pool prepares it.
type probeStmt struct{ c *conn }

func (s *probeStmt) Close() error  { return nil }
func (s *probeStmt) NumInput() int { return 0 }
func (s *probeStmt) Exec([]driver.Value) (driver.Result, error) {
	return driver.RowsAffected(0), nil
}
func (s *probeStmt) Query([]driver.Value) (driver.Rows, error) {
	return nil, errors.New("telegraphy: the probe statement returns no rows")
}
func (s *probeStmt) ExecContext(ctx context.Context, _ []driver.NamedValue) (driver.Result, error) {
	s.c.answer(ctx)
	return driver.RowsAffected(0), nil
}

// savepointStmt is a prepared SAVEPOINT, ROLLBACK TO or RELEASE.
type savepointStmt struct {
	driver.Stmt
	c    *conn
	op   spOp
	name string
}

func (s *savepointStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	res, err := stmtExec(ctx, s.Stmt, args)
	if err == nil && s.c.tx != nil {
		s.c.tx.savepoint(s.op, s.name)
	}
	return res, err
}

// txn is a database transaction on a followed connection. It buffers the
// events of the transaction's statements in statement order, marks the
// buffer at each SAVEPOINT, cuts it back on ROLLBACK TO, publishes it
// after its COMMIT succeeded (or, in outbox mode, writes it to the outbox
// just before) and drops it on rollback.
type txn struct {
	driver.Tx
	c   *conn
	ctx context.Context

	mu      sync.Mutex
	pending []pendingMsg
	marks   []savepointMark // in the order they were set
	key     *sql.Tx         // the *sql.Tx that runs the transaction, once a probe found it

	isolation sql.IsolationLevel // as BeginTx was asked; LevelDefault: the session's
	weak      int8               // MySQL: 0 not yet known, 1 below REPEATABLE READ, -1 not (isolation.go)
}

// txnOf maps the *sql.Tx of an open transaction, once a probe found its
// *txn, to it, so that further statements need no probe.
var txnOf sync.Map

// remember records that sqlTx runs t.
func (t *txn) remember(sqlTx *sql.Tx) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.key == nil {
		t.key = sqlTx
		txnOf.Store(sqlTx, t)
	}
}

// pendingMsg is one buffered event. key is the record channel that orders
// it against other transactions' events (see commitStripes), empty for
// events without one.
type pendingMsg struct {
	p   *Plugin
	msg broker.Message
	key string
}

// add buffers msgs of plugin p. With keyed, each message's second channel
// is its record channel.
func (t *txn) add(p *Plugin, msgs []broker.Message, keyed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = slices.Grow(t.pending, len(msgs))
	for _, m := range msgs {
		pm := pendingMsg{p: p, msg: m}
		if keyed && len(m.Channels) > 1 {
			pm.key = m.Channels[1]
		}
		t.pending = append(t.pending, pm)
	}
}

func (t *txn) savepoint(op spOp, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The databases stack savepoints of one name: the latest counts.
	last := -1
	for i := len(t.marks) - 1; i >= 0; i-- {
		if t.marks[i].name == name {
			last = i
			break
		}
	}
	switch op {
	case spSet:
		t.marks = append(t.marks, savepointMark{name, len(t.pending)})
	case spRollback:
		if last < 0 {
			return
		}
		if n := t.marks[last].at; n <= len(t.pending) {
			clear(t.pending[n:])
			t.pending = t.pending[:n]
		}
		// The savepoint stays; those set after it are gone.
		t.marks = t.marks[:last+1]
	case spRelease:
		if last >= 0 {
			// Gone with every savepoint set after it.
			t.marks = t.marks[:last]
		}
	}
}

// savepointMark is a savepoint and the number of events buffered when it
// was set.
type savepointMark struct {
	name string
	at   int
}

// take ends the transaction's buffering and returns what it holds.
func (t *txn) take() []pendingMsg {
	t.mu.Lock()
	defer t.mu.Unlock()
	pending := t.pending
	t.pending, t.marks = nil, nil
	if t.key != nil {
		txnOf.Delete(t.key)
		t.key = nil
	}
	return pending
}

// Commit implements driver.Tx. In outbox mode the events are inserted
// into the outbox by the transaction first; if that fails the transaction
// is rolled back and the error (wrapping ErrOutbox) returned, so the
// change and its events are lost together. Otherwise, after the COMMIT
// succeeded, the events are handed to the broker in one Publish call per
// plugin; a publish failure goes to the plugin's error handler, and
// Commit's result is the database's.
//
// Transactions whose events share a record channel hold that channel's
// stripe of commitStripes from before their COMMIT until their events are
// handed to the broker, so those events are published in commit order.
func (t *txn) Commit() error {
	t.c.tx = nil
	pending := t.take()
	if len(pending) == 0 {
		return t.Tx.Commit()
	}
	var groupBuf [1]pluginMsgs
	groups := groupByPlugin(pending, groupBuf[:0])
	var heldBuf [8]int
	var held []int
	for _, g := range groups {
		if g.p.outbox == nil {
			held = commitStripes.lock(pending, g.p.cfg.PublishTimeout, g.p.cfg.Logger, heldBuf[:0])
			break
		}
	}
	defer commitStripes.unlock(held)
	ctx := t.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	for _, g := range groups {
		if g.p.outbox == nil {
			continue
		}
		if err := g.p.outbox.Write(ctx, t.exec, g.msgs); err != nil {
			_ = t.Tx.Rollback()
			return fmt.Errorf("%w: %d event(s): %w", ErrOutbox, len(g.msgs), err)
		}
	}
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	for _, g := range groups {
		if g.p.outbox != nil {
			g.p.outbox.Committed()
		} else {
			g.p.publish(ctx, g.msgs)
		}
	}
	return nil
}

// Rollback implements driver.Tx: the transaction's events are dropped.
func (t *txn) Rollback() error {
	t.c.tx = nil
	t.take()
	return t.Tx.Rollback()
}

// exec runs query with args on the transaction's driver connection, from
// inside Commit (database/sql holds the connection for it).
func (t *txn) exec(ctx context.Context, query string, args ...any) error {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	_, err := t.c.execNamed(ctx, query, nv)
	return err
}

type pluginMsgs struct {
	p    *Plugin
	msgs []broker.Message
}

// groupByPlugin splits pending by plugin, keeping the order within each,
// appending the groups to groups. A transaction nearly always carries one
// plugin's events.
func groupByPlugin(pending []pendingMsg, groups []pluginMsgs) []pluginMsgs {
	for _, pm := range pending {
		i := 0
		for i < len(groups) && groups[i].p != pm.p {
			i++
		}
		if i == len(groups) {
			groups = append(groups, pluginMsgs{p: pm.p, msgs: make([]broker.Message, 0, len(pending))})
		}
		groups[i].msgs = append(groups[i].msgs, pm.msg)
	}
	return groups
}

// stripeCount is the number of commit stripes: two transactions with no
// record in common share one with probability about k1*k2/stripeCount,
// k the number of records each touched.
const stripeCount = 1024

// stripes orders the publication of transactions that touched a common
// record. A transaction that wrote a row holds the row's database lock
// until its COMMIT; another transaction writing the row waits for that
// lock, so it reaches its own COMMIT only after the first committed. Each
// holds the stripes of its records from before its COMMIT until its events
// are handed to the broker, in increasing stripe order (so two
// transactions never wait for each other's stripes), and the second's
// events follow the first's.
//
// A stripe is a channel of capacity one, so that the wait for it is
// bounded: a COMMIT can itself wait for another open transaction
// (PostgreSQL's deferrable constraints, checked at commit), which may be
// waiting for a stripe the first holds. After the bound the transaction
// goes on without that stripe, unordered, and says so in the log.
type stripes struct {
	ch [stripeCount]chan struct{}
}

var commitStripes = newStripes()

func newStripes() *stripes {
	s := new(stripes)
	for i := range s.ch {
		s.ch[i] = make(chan struct{}, 1)
	}
	return s
}

// stripeOf returns the stripe of a record channel: FNV-1a, so that it is
// the same in every run.
func stripeOf(key string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return int(h % stripeCount)
}

// lock takes the stripes of the keyed messages, waiting at most wait for
// each, and returns those it holds, appended to buf.
func (s *stripes) lock(pending []pendingMsg, wait time.Duration, log *slog.Logger, buf []int) []int {
	want := buf
	for _, pm := range pending {
		if pm.key == "" {
			continue
		}
		if i := stripeOf(pm.key); !slices.Contains(want, i) {
			want = append(want, i)
		}
	}
	slices.Sort(want)
	held := want[:0]
	var timer *time.Timer
	for _, i := range want {
		select {
		case s.ch[i] <- struct{}{}:
			held = append(held, i)
			continue
		default:
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case s.ch[i] <- struct{}{}:
			held = append(held, i)
		case <-timer.C:
			log.Warn("telegraphy: an earlier transaction on the same records has not published; committing without waiting for it, its events may arrive after this one's",
				"waited", wait)
			return held
		}
	}
	return held
}

func (s *stripes) unlock(held []int) {
	for _, i := range held {
		<-s.ch[i]
	}
}

// followed records the *sql.DBs whose connector the plugin installed, by
// weak pointer: a DB the app drops is not kept alive, and forgetDB
// removes its entries here and in what the plugin asked its server
// (mariaDBReturning, isolationVariable) once it is collected.
var followed struct {
	sync.Mutex
	dbs map[weak.Pointer[sql.DB]]struct{}
}

// forgetDB drops what the plugin holds of a collected *sql.DB.
func forgetDB(key weak.Pointer[sql.DB]) {
	followed.Lock()
	delete(followed.dbs, key)
	followed.Unlock()
	mariaDBReturning.Delete(key)
	isolationVariable.Delete(key)
}

// errDatabaseSQL is returned by Initialize when database/sql's DB type
// has changed shape so that the connector cannot be installed.
var errDatabaseSQL = errors.New("telegraphy: cannot install the connector on this Go version's database/sql.DB")

// followDB installs the plugin's connector on sqlDB, once, and wraps the
// idle connections it opened before, which keep their session state
// (SQLite's PRAGMAs, a private :memory: database, SET variables). The
// *sql.DB keeps its identity, pool settings and driver.
//
// database/sql has no API to wrap the connections of an open *sql.DB, so
// this writes unexported fields: the DB's connector, and under the DB's
// mutex the driver connection of each idle connection. They are checked
// by name and type before anything is written (TestFollowDB fails when
// database/sql changes them). A connection in use while this runs stays
// unwrapped: a transaction on it fails with ErrUntracked. It must run
// before the DB is used by other goroutines, as db.Use must anyway.
func followDB(sqlDB *sql.DB) error {
	followed.Lock()
	defer followed.Unlock()
	key := weak.Make(sqlDB)
	if _, ok := followed.dbs[key]; ok {
		return nil
	}
	v := reflect.ValueOf(sqlDB).Elem()
	connectorField := v.FieldByName("connector")
	muField := v.FieldByName("mu")
	freeField := v.FieldByName("freeConn")
	connType := reflect.TypeFor[driver.Conn]()
	if !connectorField.IsValid() || connectorField.Type() != reflect.TypeFor[driver.Connector]() ||
		!muField.IsValid() || muField.Type() != reflect.TypeFor[sync.Mutex]() ||
		!freeField.IsValid() || freeField.Kind() != reflect.Slice || freeField.Type().Elem().Kind() != reflect.Pointer {
		return errDatabaseSQL
	}
	if ci, ok := freeField.Type().Elem().Elem().FieldByName("ci"); !ok || ci.Type != connType {
		return errDatabaseSQL
	}
	mu := (*sync.Mutex)(unsafe.Pointer(muField.UnsafeAddr()))
	mu.Lock()
	c := (*driver.Connector)(unsafe.Pointer(connectorField.UnsafeAddr()))
	if _, ok := (*c).(*connector); !ok {
		*c = &connector{Connector: *c}
	}
	for i := 0; i < freeField.Len(); i++ {
		ci := (*driver.Conn)(unsafe.Pointer(freeField.Index(i).Elem().FieldByName("ci").UnsafeAddr()))
		if _, ok := (*ci).(wrapped); !ok && *ci != nil {
			*ci = wrapConn(*ci)
		}
	}
	mu.Unlock()
	if followed.dbs == nil {
		followed.dbs = make(map[weak.Pointer[sql.DB]]struct{})
	}
	followed.dbs[key] = struct{}{}
	runtime.AddCleanup(sqlDB, forgetDB, key)
	return nil
}

func isFollowed(sqlDB *sql.DB) bool {
	followed.Lock()
	defer followed.Unlock()
	_, ok := followed.dbs[weak.Make(sqlDB)]
	return ok
}

// sqlDBOf returns the *sql.DB behind a DB's connection pool, nil when
// there is none.
func sqlDBOf(pool gorm.ConnPool) *sql.DB {
	if ps, ok := pool.(*gorm.PreparedStmtDB); ok {
		pool = ps.ConnPool
	}
	switch c := pool.(type) {
	case *sql.DB:
		return c
	case gorm.GetDBConnector:
		if db, err := c.GetDBConn(); err == nil {
			return db
		}
	}
	return nil
}

// txState is where a statement's events go.
type txState int

const (
	untracked txState = iota
	inTx              // buffered in a *txn until its commit
	noTx              // autocommit: published once the statement succeeds
)

// track finds the transaction a statement's connection runs in. A
// *sql.DB (also inside a *gorm.PreparedStmtDB) is no transaction; any
// other connection (*sql.Tx, *sql.Conn, another plugin's wrapper) is asked
// with probeQuery. The error says why a connection cannot be followed.
func track(db *gorm.DB) (*txn, txState, error) {
	pool := db.Statement.ConnPool
	switch c := pool.(type) {
	case *gorm.PreparedStmtDB:
		pool = c.ConnPool
	case *gorm.PreparedStmtTX:
		pool = c.Tx // the probe must not be prepared and cached
	}
	if sqlDB, ok := pool.(*sql.DB); ok {
		if isFollowed(sqlDB) {
			return nil, noTx, nil
		}
		return nil, untracked, fmt.Errorf("%w: %T not opened through a DB the plugin was initialized on", ErrUntracked, db.Statement.ConnPool)
	}
	if pool == nil {
		return nil, untracked, fmt.Errorf("%w: no connection", ErrUntracked)
	}
	sqlTx, _ := pool.(*sql.Tx)
	if sqlTx != nil {
		if t, ok := txnOf.Load(sqlTx); ok {
			return t.(*txn), inTx, nil
		}
	}
	var pr probe
	ctx := db.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	_, err := pool.ExecContext(context.WithValue(ctx, probeKey{}, &pr), probeQuery)
	switch {
	case pr.reached && pr.tx != nil:
		if sqlTx != nil {
			pr.tx.remember(sqlTx)
		}
		return pr.tx, inTx, nil
	case pr.reached:
		return nil, noTx, nil
	case err != nil && (errors.Is(err, sql.ErrTxDone) || errors.Is(err, sql.ErrConnDone) || ctx.Err() != nil):
		return nil, untracked, err
	}
	return nil, untracked, fmt.Errorf("%w: %T not opened through a DB the plugin was initialized on", ErrUntracked, db.Statement.ConnPool)
}

type spOp int

const (
	spNone spOp = iota
	spSet
	spRollback
	spRelease
)

// savepointOp recognises SAVEPOINT x, ROLLBACK TO [SAVEPOINT] x and
// RELEASE [SAVEPOINT] x.
func savepointOp(q string) (spOp, string) {
	// Every statement of a transaction passes here: rule out those that
	// cannot be one of these by their first letter before splitting.
	i := 0
	for i < len(q) && (q[i] == ' ' || q[i] >= '\t' && q[i] <= '\r') {
		i++
	}
	rest := q[i:]
	if rest != "" && rest[0] >= utf8.RuneSelf {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
	}
	if !hasPrefixFold(rest, "SAVEPOINT") && !hasPrefixFold(rest, "ROLLBACK") && !hasPrefixFold(rest, "RELEASE") {
		return spNone, ""
	}
	f := strings.Fields(q)
	if len(f) < 2 {
		return spNone, ""
	}
	raw := strings.TrimRight(f[len(f)-1], ";")
	name := strings.Trim(raw, "\"`")
	if !strings.HasPrefix(raw, `"`) {
		// Unquoted names (and MySQL's backquoted ones) are
		// case-insensitive; a PostgreSQL "quoted" one is not.
		name = strings.ToLower(name)
	}
	to := 1 // ROLLBACK [TRANSACTION | WORK] TO [SAVEPOINT] name
	if len(f) > 2 && (strings.EqualFold(f[1], "TRANSACTION") || strings.EqualFold(f[1], "WORK")) {
		to = 2
	}
	switch {
	case len(f) == 2 && strings.EqualFold(f[0], "SAVEPOINT"):
		return spSet, name
	case strings.EqualFold(f[0], "ROLLBACK") && len(f) >= to+2 && strings.EqualFold(f[to], "TO"):
		return spRollback, name
	case strings.EqualFold(f[0], "RELEASE"):
		return spRelease, name
	}
	return spNone, ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
