package telegraphy

import (
	"context"
	"database/sql/driver"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A transaction begun with SQL on one connection (db.Connection with
// tx.Exec("BEGIN"), a *sql.Conn) is followed like one begun through
// database/sql: the statement that begins it opens a *txn on the driver
// connection, whose events wait for the statement that ends it. COMMIT
// (END) publishes them once it succeeded, ROLLBACK (ABORT) drops them, and
// savepoints work as in any transaction. PostgreSQL turns the COMMIT of a
// transaction in which a statement failed into a rollback without an
// error: before such a COMMIT the plugin asks the server (SELECT 1 fails
// in an aborted transaction) and drops the events if it is aborted.
//
// Not followed: a transaction begun or ended by a statement that holds
// more than one (multi-statement strings), MySQL's implicit commits (a
// statement that commits the transaction on its own, as DDL or another
// BEGIN does, leaves the events waiting for the explicit COMMIT or
// ROLLBACK), sessions with autocommit turned off, and statements that
// reach the connection through the pool while such a transaction is open
// on it (the plugin takes a statement on a *sql.DB to run outside any
// transaction). A COMMIT that fails leaves the events waiting where the
// transaction stays open (SQLite, see rawEnd); elsewhere, and after a
// ROLLBACK that fails, they are dropped, never sent for work that was not
// committed.

// rawTx is the driver.Tx of a transaction begun with SQL: its Commit and
// Rollback run the statement that ends it, as the caller wrote it.
type rawTx struct {
	c     *conn
	ctx   context.Context
	how   txEnd
	query string
	args  []driver.NamedValue
}

func (r *rawTx) Commit() error { return r.run(r.query, r.args) }

// Rollback runs the caller's ROLLBACK, or a ROLLBACK of the plugin's own
// when it is the caller's COMMIT that must not happen (in outbox mode,
// when the events could not be written to the outbox).
func (r *rawTx) Rollback() error {
	if r.how == txRollsBack {
		return r.run(r.query, r.args)
	}
	return r.run("ROLLBACK", nil)
}

func (r *rawTx) run(query string, args []driver.NamedValue) error {
	_, err := r.c.exec(r.ctx, query, args)
	return err
}

// txEnd is what a statement does to the transaction it runs in.
type txEnd int8

const (
	txKeeps     txEnd = iota
	txCommits         // COMMIT, END
	txRollsBack       // ROLLBACK, ABORT (not ROLLBACK TO)
)

// rawBegin runs a statement that begins a transaction, and follows it.
func (c *conn) rawBegin(ctx context.Context, run func() (driver.Result, error)) (driver.Result, error) {
	res, err := run()
	if err == nil {
		c.tx = &txn{Tx: &rawTx{c: c}, c: c, ctx: ctx}
	}
	return res, err
}

// txStmt is a prepared statement that begins or ends a transaction.
type txStmt struct {
	driver.Stmt
	c     *conn
	query string
	end   txEnd // txKeeps: it begins one
	chain bool
}

func (s *txStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	run := func() (driver.Result, error) { return stmtExec(ctx, s.Stmt, args) }
	switch t := s.c.tx; {
	case t == nil && s.end == txKeeps:
		return s.c.rawBegin(ctx, run)
	case t != nil && s.end != txKeeps:
		if rt, ok := t.Tx.(*rawTx); ok {
			return s.c.rawEnd(ctx, t, rt, s.end, s.chain, s.query, args)
		}
	}
	return run()
}

// rawEnd runs query, which ends the transaction begun with SQL that t
// follows, through t's Commit or Rollback. With AND CHAIN a new one
// begins.
func (c *conn) rawEnd(ctx context.Context, t *txn, rt *rawTx, end txEnd, chain bool, query string, args []driver.NamedValue) (driver.Result, error) {
	rt.ctx, rt.how, rt.query, rt.args = ctx, end, query, args
	t.ctx = ctx
	var err error
	if end == txRollsBack {
		err = t.Rollback()
	} else {
		if t.hasPending() {
			if _, aborted := c.exec(ctx, "SELECT 1", nil); aborted != nil {
				t.take() // the COMMIT can only roll back (PostgreSQL)
			}
		}
		// SQLite keeps the transaction open after a COMMIT that failed
		// (a deferred foreign key, SQLITE_BUSY): its events then wait
		// for the statement that ends it, and the outbox rows Commit
		// wrote are taken back, to be written by that statement.
		var pending []pendingMsg
		var marks []savepointMark
		var undo bool
		tells := c.tellsTransaction()
		if tells {
			pending, marks, undo = t.snapshot()
		}
		if undo {
			_, serr := c.exec(ctx, "SAVEPOINT telegraphy_commit", nil)
			undo = serr == nil
		}
		err = t.Commit()
		if err != nil && tells && c.inTransaction() {
			if undo {
				_, _ = c.exec(ctx, "ROLLBACK TO telegraphy_commit", nil)
				_, _ = c.exec(ctx, "RELEASE telegraphy_commit", nil)
			}
			t.restore(pending, marks)
			c.tx = t
		}
	}
	if err == nil && chain {
		c.tx = &txn{Tx: &rawTx{c: c}, c: c, ctx: ctx}
	}
	return driver.RowsAffected(0), err
}

// snapshot returns copies of the transaction's events and savepoints,
// and whether any event is bound for an outbox.
func (t *txn) snapshot() ([]pendingMsg, []savepointMark, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	outbox := slices.ContainsFunc(t.pending, func(pm pendingMsg) bool { return pm.p.outbox != nil })
	return slices.Clone(t.pending), slices.Clone(t.marks), outbox
}

// restore puts back what snapshot returned, on a transaction that stays
// open after its COMMIT failed.
func (t *txn) restore(pending []pendingMsg, marks []savepointMark) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending, t.marks = pending, marks
}

// autoCommitter is a driver connection that tells whether it is outside
// a transaction (go-sqlite3's).
type autoCommitter interface{ AutoCommit() bool }

// tellsTransaction reports whether inTransaction can answer true.
func (c *conn) tellsTransaction() bool {
	_, ok := c.Conn.(autoCommitter)
	return ok
}

// inTransaction reports whether the driver connection is inside a
// transaction, where the driver can tell (SQLite); false elsewhere, where
// a failed COMMIT ends the transaction (PostgreSQL rolls it back; MySQL
// and MariaDB fail it with its connection, or roll it back).
func (c *conn) inTransaction() bool {
	ac, ok := c.Conn.(autoCommitter)
	return ok && !ac.AutoCommit()
}

func (t *txn) hasPending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) > 0
}

// txWords returns the words of a statement that may begin or end a
// transaction, upper case, without a final semicolon; nil for any other
// statement (decided by its first word's beginning before anything is
// split: every statement outside a transaction passes here) and for one
// that holds more than one.
func txWords(q string) []string {
	rest := skipSpace(q)
	for strings.HasPrefix(rest, "/*") || strings.HasPrefix(rest, "--") {
		rest = skipSpace(skipComment(rest))
	}
	if rest == "" {
		return nil
	}
	if !hasPrefixFold(rest, "BEGIN") && !hasPrefixFold(rest, "START") && !hasPrefixFold(rest, "COMMIT") &&
		!hasPrefixFold(rest, "END") && !hasPrefixFold(rest, "ROLLBACK") && !hasPrefixFold(rest, "ABORT") {
		return nil
	}
	if strings.Contains(rest, "/*") || strings.Contains(rest, "--") {
		rest = withoutComments(rest)
	}
	rest = strings.TrimRightFunc(rest, func(r rune) bool { return r == ';' || unicode.IsSpace(r) })
	if strings.ContainsRune(rest, ';') {
		return nil
	}
	f := strings.Fields(rest)
	if len(f) > 8 {
		return nil
	}
	for i := range f {
		f[i] = strings.ToUpper(f[i])
	}
	return f
}

// beginsTx reports whether q begins a transaction: BEGIN [WORK |
// TRANSACTION | DEFERRED | IMMEDIATE | EXCLUSIVE] ... or START TRANSACTION
// ... (the modes that may follow are the database's to check).
func beginsTx(q string) bool {
	f := txWords(q)
	switch {
	case len(f) == 0:
		return false
	case f[0] == "BEGIN":
		return true
	case f[0] == "START":
		return len(f) > 1 && f[1] == "TRANSACTION"
	}
	return false
}

// endsTx reports how q ends a transaction: COMMIT or END [WORK |
// TRANSACTION], ROLLBACK or ABORT [WORK | TRANSACTION], each with MySQL's
// [AND [NO] CHAIN] [[NO] RELEASE]; chain for AND CHAIN, which begins the
// next one at once. ROLLBACK ... TO (a savepoint), COMMIT PREPARED and
// ROLLBACK PREPARED (two-phase commit, outside the transaction) are not.
func endsTx(q string) (end txEnd, chain bool) {
	f := txWords(q)
	if len(f) == 0 {
		return txKeeps, false
	}
	switch f[0] {
	case "COMMIT", "END":
		end = txCommits
	case "ROLLBACK", "ABORT":
		end = txRollsBack
	default:
		return txKeeps, false
	}
	rest := f[1:]
	if len(rest) > 0 && (rest[0] == "WORK" || rest[0] == "TRANSACTION") {
		rest = rest[1:]
	}
	switch {
	case len(rest) >= 2 && rest[0] == "AND" && rest[1] == "CHAIN":
		chain, rest = true, rest[2:]
	case len(rest) >= 3 && rest[0] == "AND" && rest[1] == "NO" && rest[2] == "CHAIN":
		rest = rest[3:]
	}
	switch {
	case len(rest) == 1 && rest[0] == "RELEASE":
		rest = nil
	case len(rest) == 2 && rest[0] == "NO" && rest[1] == "RELEASE":
		rest = nil
	}
	if len(rest) != 0 {
		return txKeeps, false // TO SAVEPOINT, PREPARED, or not SQL this knows
	}
	return end, chain
}

// skipSpace returns s without its leading white space.
func skipSpace(s string) string {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	s = s[i:]
	if s != "" && s[0] >= utf8.RuneSelf {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	return s
}

// skipComment returns s, which starts with a comment, after it; "" for a
// comment that does not end.
func skipComment(s string) string {
	if strings.HasPrefix(s, "--") {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			return s[i+1:]
		}
		return ""
	}
	if i := strings.Index(s[2:], "*/"); i >= 0 {
		return s[2+i+2:]
	}
	return ""
}

// withoutComments returns s, a statement of keywords, with its comments
// replaced by a space.
func withoutComments(s string) string {
	var b strings.Builder
	for s != "" {
		i := strings.Index(s, "/*")
		if j := strings.Index(s, "--"); j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteByte(' ')
		s = skipComment(s[i:])
	}
	return b.String()
}
