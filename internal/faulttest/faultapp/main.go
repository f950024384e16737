// Command faultapp is the program the fault tests start and kill: "app"
// commits numbered rows through GORM with the telegraphy plugin in outbox
// mode, publishing through Redis; "hub" serves a WebSocket hub fed by the
// same Redis.
//
//	faultapp app -driver sqlite -dsn /tmp/x.db -redis redis://127.0.0.1:6390/0 -from 1 -n 500
//	faultapp hub -addr 127.0.0.1:8765 -redis redis://127.0.0.1:6390/0
//
// The app prints "ready", then "committed <seq>" after each commit returns,
// then "done", and runs its relay until SIGTERM (or SIGKILL).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/hub"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Item is the model the app writes. Seq numbers the committed rows
// 1, 2, 3, ...; rolled-back rows carry Seq -1.
type Item struct {
	ID  uint `json:"id"`
	Seq int  `json:"seq"`
}

// Channel is the model channel of Item.
const Channel = "fault.Item"

var errRollback = errors.New("rolled back on purpose")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: faultapp app|hub [flags]")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var err error
	switch os.Args[1] {
	case "app":
		err = runApp(os.Args[2:], log)
	case "hub":
		err = runHub(os.Args[2:], log)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultapp:", err)
		os.Exit(1)
	}
}

func open(driver, dsn string) (gorm.Dialector, error) {
	switch driver {
	case "sqlite":
		return sqlite.Open(dsn + "?_journal_mode=WAL&_busy_timeout=10000"), nil
	case "postgres":
		return postgres.Open(dsn), nil
	case "mysql":
		return mysql.Open(dsn), nil
	}
	return nil, fmt.Errorf("unknown driver %q", driver)
}

func runApp(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("app", flag.ExitOnError)
	driver := fs.String("driver", "sqlite", "sqlite, postgres or mysql")
	dsn := fs.String("dsn", "", "database DSN (a file name for sqlite)")
	redisURL := fs.String("redis", "", "Redis URL")
	from := fs.Int("from", 1, "first Seq to commit")
	n := fs.Int("n", 0, "rows to commit")
	pace := fs.Duration("pace", 0, "pause after each commit")
	relay := fs.Bool("relay", true, "run the outbox relay")
	lease := fs.Duration("lease", time.Second, "relay lease TTL")
	rollbackEvery := fs.Int("rollback-every", 0, "after every k commits, roll a transaction back (0: never)")
	_ = fs.Parse(args)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	dl, err := open(*driver, *dsn)
	if err != nil {
		return err
	}
	db, err := gorm.Open(dl, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	if err := db.AutoMigrate(&Item{}); err != nil {
		return err
	}
	bus, err := redisbroker.New(redisbroker.Config{URL: *redisURL, Logger: log, MaxRetryDelay: 250 * time.Millisecond,
		ErrorHandler: func(error) {}})
	if err != nil {
		return err
	}
	p := telegraphy.New(telegraphy.Config{Broker: bus, Logger: log, ErrorHandler: func(error) {},
		Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: !*relay, LeaseTTL: *lease,
			PollInterval: 100 * time.Millisecond}})
	if err := p.Register(Item{}, events.Options{Name: Channel}); err != nil {
		return err
	}
	if err := db.Use(p); err != nil {
		return err
	}
	fmt.Println("ready")
	for seq := *from; seq < *from+*n && ctx.Err() == nil; seq++ {
		for {
			err := db.Transaction(func(tx *gorm.DB) error { return tx.Create(&Item{Seq: seq}).Error })
			if err == nil {
				break
			}
			fmt.Fprintf(os.Stderr, "commit %d: %v (retrying)\n", seq, err)
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Printf("committed %d\n", seq)
		if k := *rollbackEvery; k > 0 && seq%k == 0 {
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&Item{Seq: -1}).Error; err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				return fmt.Errorf("rollback: %v", err)
			}
		}
		if *pace > 0 {
			time.Sleep(*pace)
		}
	}
	fmt.Println("done")
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(p.Close(cctx), bus.Close(cctx))
}

func runHub(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("hub", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	redisURL := fs.String("redis", "", "Redis URL")
	_ = fs.Parse(args)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	bus, err := redisbroker.New(redisbroker.Config{URL: *redisURL, Logger: log, MaxRetryDelay: 250 * time.Millisecond})
	if err != nil {
		return err
	}
	h, err := hub.New(hub.Config{Broker: bus, PublicChannels: []string{"fault.*"}, Logger: log})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Printf("listening %s\n", l.Addr())
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(h.Close(cctx), srv.Shutdown(cctx), bus.Close(cctx))
}
