package telegraphy

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/telegraphy-go/telegraphy/broker"
	"gorm.io/gorm"
)

// connPool wraps the DB's connection pool so that every transaction GORM
// begins through it (db.Begin, db.Transaction, the implicit per-statement
// transaction, prepared-statement sessions) is a *txPool the plugin can
// follow to its commit or rollback.
type connPool struct {
	gorm.ConnPool
	p *Plugin
}

// BeginTx implements gorm.ConnPoolBeginner.
func (c *connPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	var inner gorm.ConnPool
	switch b := c.ConnPool.(type) {
	case gorm.TxBeginner:
		tx, err := b.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		inner = tx
	case gorm.ConnPoolBeginner:
		tx, err := b.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		inner = tx
	default:
		return nil, gorm.ErrInvalidTransaction
	}
	tx, ok := inner.(gorm.Tx)
	if !ok {
		return nil, gorm.ErrInvalidTransaction
	}
	return &txPool{Tx: tx, p: c.p, ctx: ctx}, nil
}

// GetDBConn implements gorm.GetDBConnector so db.DB() keeps working.
func (c *connPool) GetDBConn() (*sql.DB, error) {
	switch inner := c.ConnPool.(type) {
	case *sql.DB:
		return inner, nil
	case gorm.GetDBConnector:
		return inner.GetDBConn()
	}
	return nil, gorm.ErrInvalidDB
}

// Ping lets gorm and health checks ping through the wrapper.
func (c *connPool) Ping() error {
	db, err := c.GetDBConn()
	if err != nil {
		return err
	}
	return db.Ping()
}

// txPool is one database transaction begun through a connPool. It buffers
// the transaction's event messages in statement order, marks the buffer at
// each SAVEPOINT, cuts it back on ROLLBACK TO, publishes it after Commit
// succeeds and drops it on Rollback.
type txPool struct {
	gorm.Tx
	p   *Plugin
	ctx context.Context

	mu      sync.Mutex
	pending []broker.Message
	marks   map[string]int
}

// add buffers msgs, which it may keep.
func (t *txPool) add(msgs []broker.Message) {
	t.mu.Lock()
	if t.pending == nil {
		t.pending = msgs
	} else {
		t.pending = append(t.pending, msgs...)
	}
	t.mu.Unlock()
}

// ExecContext runs query in the transaction and follows savepoints. GORM's
// SavePoint and RollbackTo (and nested Transaction) send "SAVEPOINT x" and
// "ROLLBACK TO SAVEPOINT x" on every dialect; raw Exec of the same
// statements is followed too.
func (t *txPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	op, name := savepointOp(query)
	if op == spNone {
		return t.Tx.ExecContext(ctx, query, args...)
	}
	inner := t.Tx
	if ps, ok := inner.(*gorm.PreparedStmtTX); ok {
		// Savepoint statements cannot be prepared on every server.
		inner = ps.Tx
	}
	res, err := inner.ExecContext(ctx, query, args...)
	if err != nil {
		return res, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch op {
	case spSet:
		if t.marks == nil {
			t.marks = make(map[string]int)
		}
		t.marks[name] = len(t.pending)
	case spRollback:
		if n, ok := t.marks[name]; ok && n <= len(t.pending) {
			clear(t.pending[n:])
			t.pending = t.pending[:n]
		}
		// Savepoints set after this one are gone.
		for k, n2 := range t.marks {
			if n2 > len(t.pending) {
				delete(t.marks, k)
			}
		}
	case spRelease:
		delete(t.marks, name)
	}
	return res, nil
}

// Commit commits the transaction and, when that succeeds, publishes its
// events in one Publish call. A publish failure is reported to the
// plugin's error handler; Commit's result is the database's.
func (t *txPool) Commit() error {
	if t.p.outbox != nil {
		return t.p.outbox.commit(t)
	}
	err := t.Tx.Commit()
	t.mu.Lock()
	msgs := t.pending
	t.pending, t.marks = nil, nil
	t.mu.Unlock()
	if err == nil && len(msgs) > 0 {
		t.p.publish(t.ctx, msgs)
	}
	return err
}

// Rollback rolls the transaction back and drops its events.
func (t *txPool) Rollback() error {
	err := t.Tx.Rollback()
	t.mu.Lock()
	t.pending, t.marks = nil, nil
	t.mu.Unlock()
	return err
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
	if i < len(q) && q[i] < utf8.RuneSelf {
		switch q[i] | 0x20 {
		case 's', 'r':
		default:
			return spNone, ""
		}
	}
	f := strings.Fields(q)
	if len(f) < 2 {
		return spNone, ""
	}
	name := strings.Trim(f[len(f)-1], "\"`;")
	switch {
	case len(f) == 2 && strings.EqualFold(f[0], "SAVEPOINT"):
		return spSet, name
	case strings.EqualFold(f[0], "ROLLBACK") && len(f) >= 3 && strings.EqualFold(f[1], "TO"):
		return spRollback, name
	case strings.EqualFold(f[0], "RELEASE"):
		return spRelease, name
	}
	return spNone, ""
}
