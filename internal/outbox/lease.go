package outbox

import (
	"context"
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// lease is a relay's hold on the lease row of its outbox table: one relay
// at a time publishes. The holder renews the row (its version grows) four
// times per ttl; another relay takes the row over once it has seen the
// version stand still for ttl.
type lease struct {
	db     *gorm.DB
	t      table
	holder string // this relay's id
	ttl    time.Duration
	log    *slog.Logger
	onHeld func(bool) // called when held changes

	held        bool
	renewed     time.Time // last successful take or renewal
	checked     time.Time // last look at the row while not held
	seenHolder  string
	seenVersion int64
	seenAt      time.Time // when the row last changed, as seen by this relay
}

// due reports whether the holder should renew the lease now.
func (l *lease) due(now time.Time) bool { return now.Sub(l.renewed) >= l.ttl/4 }

// take takes the lease when it is free, already this relay's, or its
// holder has not renewed it for ttl. It reports whether this relay holds
// it now.
func (l *lease) take(ctx context.Context) bool {
	now := time.Now()
	l.checked = now
	var r leaseRow
	if err := l.db.WithContext(ctx).Table(l.t.lease).Where("name = ?", l.t.name).Take(&r).Error; err != nil {
		return false
	}
	if r.Holder != l.seenHolder || r.Version != l.seenVersion {
		l.seenHolder, l.seenVersion, l.seenAt = r.Holder, r.Version, now
	}
	free := r.Holder == "" || r.Holder == l.holder || now.Sub(l.seenAt) >= l.ttl
	if !free {
		return false
	}
	res := l.db.WithContext(ctx).Table(l.t.lease).
		Where("name = ? AND holder = ? AND version = ?", l.t.name, r.Holder, r.Version).
		UpdateColumns(map[string]any{"holder": l.holder, "version": gorm.Expr("version + 1")})
	if res.Error != nil || res.RowsAffected != 1 {
		return false
	}
	if r.Holder != "" && r.Holder != l.holder {
		l.log.Info("telegraphy: outbox relay took over the lease of a relay that stopped renewing it",
			"relay", l.holder, "previous", r.Holder)
	}
	l.renewed = now
	l.set(true)
	return true
}

// renew extends the lease; false when another relay has it now.
func (l *lease) renew(ctx context.Context) (bool, error) {
	now := time.Now()
	res := l.db.WithContext(ctx).Table(l.t.lease).
		Where("name = ? AND holder = ?", l.t.name, l.holder).
		UpdateColumn("version", gorm.Expr("version + 1"))
	if res.Error != nil {
		return false, res.Error
	}
	if res.RowsAffected != 1 {
		return false, nil
	}
	l.renewed = now
	return true, nil
}

// release gives the lease up so that another relay may take it at once.
func (l *lease) release() {
	if !l.held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.db.WithContext(ctx).Table(l.t.lease).
		Where("name = ? AND holder = ?", l.t.name, l.holder).
		UpdateColumns(map[string]any{"holder": "", "version": gorm.Expr("version + 1")})
	l.set(false)
}

func (l *lease) set(held bool) {
	l.held = held
	if l.onHeld != nil {
		l.onHeld(held)
	}
}
