package jsclient_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
)

// Note is the model of the echo test (test/origin.test.mjs).
type Note struct {
	ID    uint   `json:"id" gorm:"primaryKey"`
	Title string `json:"title"`
}

// appDB opens a fresh SQLite database with model's table and a plugin
// publishing to bus, with model registered with opts.
func appDB(t *testing.T, bus broker.Broker, model any, opts events.Options) *gorm.DB {
	p := telegraphy.New(telegraphy.Config{Broker: bus, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := p.Register(model, opts); err != nil {
		t.Fatal(err)
	}
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(t.TempDir(), "app.db")+"?_busy_timeout=5000"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	closeDB(t, db)
	if err := db.AutoMigrate(model); err != nil {
		t.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	return db
}

// noteApp is the app of the echo test, served under /app/: POST
// /app/notes?title=... creates a note as the user the X-User header
// names (standing in for the app's login) and answers the row. Its
// writes carry the origin OriginMiddleware takes from the page's
// t.headers().
func noteApp(t *testing.T, bus broker.Broker) http.Handler {
	db := appDB(t, bus, Note{}, events.Options{Name: "echo.Note"})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /app/notes", func(w http.ResponseWriter, r *http.Request) {
		n := Note{Title: r.URL.Query().Get("title")}
		if err := db.WithContext(r.Context()).Create(&n).Error; err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(n)
	})
	return telegraphy.OriginMiddleware(func(r *http.Request) string { return r.Header.Get("X-User") })(mux)
}
