// Package demo is the app behind "telegraphy demo": a shared task board on
// SQLite with the in-process hub. Every open window updates live; each user
// also has a private channel ("user:<name>") for notes and for the tasks
// assigned to them.
//
// It is the example to copy from: the wiring is in New and Handler, the
// page in page.html. Users "log in" with ?user=alice, which is fine for a
// demo and nothing else.
//
// The hub can be stopped and started again from the page (or with StopHub
// and StartHub) while the database, the broker and the web app keep
// running, as a separate hub process would be restarted: the app keeps
// taking writes, the pages show "disconnected", reconnect by themselves and
// receive what was committed meanwhile, each event once.
package demo

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/jsclient"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// Task is a row of the board.
type Task struct {
	ID       uint   `json:"id" gorm:"primaryKey"`
	Title    string `json:"title" gorm:"not null"`
	Status   string `json:"status" gorm:"not null;default:todo"` // todo, doing or done
	Assignee string `json:"assignee"`                            // a user, or empty
	// UpdatedAt, set by GORM on every write, is the version each event
	// of the task carries (events.Options.Version): the page's list
	// drops an event older than the task it shows.
	UpdatedAt time.Time `json:"updated_at"`
}

// Users are the demo's users.
var Users = []string{"alice", "bob", "carol"}

var statuses = []string{"todo", "doing", "done"}

// grants are the channels a user may subscribe to: the board, every task
// record, and their own private channel.
func grants(user string) []string {
	return []string{"demo.Task", "demo.Task:*", "user:" + user}
}

// Config configures the demo. The zero value is valid.
type Config struct {
	// Addr is where Run listens. Zero value means "127.0.0.1:8080".
	Addr string
	// Dir holds the SQLite database demo.db, kept between runs. Zero value
	// means a fresh temporary directory, removed by Close.
	Dir string
	// Secret signs the connection tokens. Zero value means a random one.
	Secret []byte
	// Logger receives the app's and the hub's logs. Zero value means
	// slog.Default().
	Logger *slog.Logger
	// Stdout is where Run prints the URL to open. Zero value means
	// os.Stdout.
	Stdout io.Writer
}

// App is the demo app. Create it with New, serve Handler, Close it.
type App struct {
	db     *gorm.DB
	bus    *broker.Memory
	events *telegraphy.Plugin
	issuer *tokens.Issuer
	page   *template.Template
	secret []byte
	log    *slog.Logger
	dbPath string
	tmpDir string // removed by Close

	mu  sync.Mutex
	hub *hub.Hub // nil while stopped
}

//go:embed page.html
var files embed.FS

// New opens the database, wires the plugin, the broker and the hub, and
// adds a few tasks to an empty board.
func New(cfg Config) (*App, error) {
	a := &App{log: cfg.Logger, secret: cfg.Secret}
	if err := a.open(cfg); err != nil {
		_ = a.Close(context.Background())
		return nil, fmt.Errorf("demo: %w", err)
	}
	return a, nil
}

// open does New's work; on error, New closes what it opened.
func (a *App) open(cfg Config) (err error) {
	if a.log == nil {
		a.log = slog.Default()
	}
	if len(a.secret) == 0 {
		a.secret = make([]byte, 32)
		_, _ = rand.Read(a.secret)
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "telegraphy-demo-"); err != nil {
			return err
		}
		a.tmpDir = dir
	} else if err = os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("database directory: %w", err)
	}
	if a.issuer, err = tokens.NewIssuer(tokens.IssuerConfig{Secret: a.secret}); err != nil {
		return err
	}

	// The broker carries events from the plugin to the hub and keeps each
	// channel's recent history, from which reconnecting pages recover.
	a.bus = broker.NewMemory()
	a.events = telegraphy.New(telegraphy.Config{Broker: a.bus, Logger: a.log})
	err = a.events.Register(Task{}, events.Options{
		Name:        "demo.Task",
		VerboseName: "Task",
		Version:     "UpdatedAt",
		// Besides "demo.Task" and "demo.Task:<id>", a task's events go to
		// its assignee's private channel. Reassigning a task moves it: the
		// old assignee's channel gets "leave", the new one's "enter", and
		// each page's "my tasks" follows. ChannelFields says Channels reads
		// only Assignee, so the plugin reads that column before an update
		// that assigns it, and nothing before the others.
		ChannelFields: []string{"Assignee"},
		Channels: func(model any) []string {
			if t := model.(*Task); t.Assignee != "" {
				return []string{"user:" + t.Assignee}
			}
			return nil
		},
	})
	if err != nil {
		return err
	}

	a.dbPath = filepath.Join(dir, "demo.db")
	// A SQLite URI: "?" and "#" in the directory's name would end the
	// path, "%" start an escape.
	a.db, err = gorm.Open(sqlite.Open("file:"+uriPath.Replace(a.dbPath)+"?_busy_timeout=5000&_journal_mode=WAL"),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		return fmt.Errorf("open %s: %w", a.dbPath, err)
	}
	if sqlDB, err := a.db.DB(); err == nil {
		sqlDB.SetMaxOpenConns(1) // SQLite has one writer
	}
	if err = a.db.Use(a.events); err != nil {
		return err
	}
	if err = a.db.AutoMigrate(&Task{}); err != nil {
		return fmt.Errorf("create the tasks table in %s: %w", a.dbPath, err)
	}
	var n int64
	if err = a.db.Model(&Task{}).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		err = a.db.Create([]*Task{
			{Title: "Open this board in a second window", Status: "done", Assignee: "alice"},
			{Title: "Edit a task and watch the other window", Status: "doing", Assignee: "bob"},
			{Title: "Stop the hub, make changes, start it again", Status: "todo"},
		}).Error
		if err != nil {
			return err
		}
	}

	helper := jsclient.TemplateConfig{
		Issuer:    a.issuer,
		Authorize: authorize,
		Broker:    a.bus,
		Mount:     "/telegraphy",
	}
	a.page, err = template.New("page.html").Funcs(jsclient.FuncMap(helper)).ParseFS(files, "page.html")
	if err != nil {
		return err
	}
	return a.StartHub()
}

// authorize is the demo's login: the user named by ?user=.
func authorize(r *http.Request) (string, []string, error) {
	user := r.URL.Query().Get("user")
	if !slices.Contains(Users, user) {
		return "", nil, tokens.ErrUnauthorized
	}
	return user, grants(user), nil
}

// StartHub starts a new hub over the app's broker. It does nothing when
// the hub runs.
func (a *App) StartHub() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hub != nil {
		return nil
	}
	// Presence on the board's channel: the page lists who views it.
	h, err := hub.New(hub.Config{Broker: a.bus, Secret: a.secret, Logger: a.log, Presence: []string{"demo.Task"}})
	if err != nil {
		return err
	}
	a.hub = h
	return nil
}

// StopHub closes every WebSocket (with 1001, "going away") and stops the
// hub; until StartHub, connections are refused with 503. The database, the
// broker and the app keep running.
func (a *App) StopHub(ctx context.Context) error {
	a.mu.Lock()
	h := a.hub
	a.hub = nil
	a.mu.Unlock()
	if h == nil {
		return nil
	}
	return h.Close(ctx)
}

// Close stops the hub and releases the database and the broker. It is
// idempotent.
func (a *App) Close(ctx context.Context) error {
	err := a.StopHub(ctx)
	if a.db != nil {
		if sqlDB, e := a.db.DB(); e == nil {
			err = errors.Join(err, sqlDB.Close())
		}
	}
	if a.bus != nil {
		err = errors.Join(err, a.bus.Close(ctx))
	}
	if a.tmpDir != "" {
		err = errors.Join(err, os.RemoveAll(a.tmpDir))
		a.tmpDir = ""
	}
	return err
}

// Handler returns the app: the board at /?user=<name>, the form endpoints,
// the token endpoint, and the hub mounted at /telegraphy/.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.serveBoard)
	// Reconnecting pages ask here for a fresh token (each connects once).
	mux.Handle("/token", tokens.Handler(tokens.HandlerConfig{Issuer: a.issuer, Authorize: authorize}))
	mux.HandleFunc("GET /tasks", a.listTasks)
	mux.HandleFunc("POST /tasks", a.createTask)
	mux.HandleFunc("POST /tasks/{id}", a.updateTask)
	mux.HandleFunc("POST /tasks/{id}/delete", a.deleteTask)
	mux.HandleFunc("POST /notes", a.sendNote)
	mux.HandleFunc("POST /hub/stop", func(w http.ResponseWriter, r *http.Request) {
		a.respond(w, a.StopHub(r.Context()))
	})
	mux.HandleFunc("POST /hub/start", func(w http.ResponseWriter, r *http.Request) {
		a.respond(w, a.StartHub())
	})
	// The script is served by the app, so pages load even while the hub is
	// stopped; the hub serves the same file at /telegraphy/telegraphy.js.
	mux.Handle("GET /telegraphy/telegraphy.js", jsclient.Handler())
	mux.Handle("/telegraphy/", http.StripPrefix("/telegraphy", http.HandlerFunc(a.serveHub)))
	// A write from a page that sends t.headers() is stamped with its
	// connection: the hub does not echo its events back to that page
	// (which applies the app's answer at once), and only to it, when the
	// logged-in user is the one its token names.
	return guard(telegraphy.OriginMiddleware(loggedIn)(mux))
}

// loggedIn is the user authorize finds for r, or "".
func loggedIn(r *http.Request) string {
	user, _, err := authorize(r)
	if err != nil {
		return ""
	}
	return user
}

// uriPath escapes what ends or escapes the path of a SQLite URI.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// maxFormBytes bounds the body of a write request (guard).
const maxFormBytes = 16 << 10

// guard refuses requests that a page on another site could make the
// browser send: any request whose Host is a domain name other than
// localhost (DNS rebinding: a name the attacker controls, pointed at the
// demo's address), and a POST whose Origin is not the demo's own (a form
// or fetch from another site, which could stop the hub or write tasks).
// Requests without Origin come from non-browser clients and are let
// through.
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			http.Error(w, "forbidden host: open the demo at localhost or an IP address", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if o := r.Header.Get("Origin"); o != "" {
				u, err := url.Parse(o)
				if err != nil || !strings.EqualFold(u.Host, r.Host) {
					http.Error(w, "forbidden: cross-origin request", http.StatusForbidden)
					return
				}
			}
			// The largest form the demo takes is a few hundred bytes:
			// read it here, bounded (handlers then use r.FormValue).
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			err := r.ParseMultipartForm(maxFormBytes)
			if errors.Is(err, http.ErrNotMultipart) {
				err = r.ParseForm()
			}
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			if err != nil {
				http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// localHost reports whether a Host header names localhost or an IP
// address, which no DNS rebinding can stand for.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.EqualFold(host, "localhost") || net.ParseIP(host) != nil
}

func (a *App) serveHub(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	h := a.hub
	a.mu.Unlock()
	if h == nil {
		http.Error(w, "hub stopped", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// board is the page's data. Tasks is a method, not a field, so the
// template reads the tasks after telegraphyScripts has taken the channels'
// positions: an event committed in between is then both in the list and
// delivered, never in neither (the page applies events idempotently).
type board struct {
	User    string
	Users   []string
	Request *http.Request
	db      *gorm.DB
}

func (b board) Tasks() ([]Task, error) {
	var ts []Task
	return ts, b.db.Order("id").Find(&ts).Error
}

func (b board) Statuses() []string { return statuses }

func (a *App) serveBoard(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if !slices.Contains(Users, user) {
		user = "" // the page offers the users to pick from
	}
	var buf strings.Builder
	err := a.page.Execute(&buf, board{User: user, Users: Users, Request: r, db: a.db.WithContext(r.Context())})
	if err != nil {
		a.log.Error("demo: render board", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // the page holds a single-use token
	_, _ = io.WriteString(w, buf.String())
}

// listTasks answers the board as the page's list refetches it: the
// channel's position, then the tasks, read in that order for the reason
// given at board. With ?mine=1, the user's channel and the tasks assigned
// to them (the page's "my tasks").
func (a *App) listTasks(w http.ResponseWriter, r *http.Request) {
	user, _, err := authorize(r)
	if err != nil {
		http.Error(w, "log in with ?user=", http.StatusUnauthorized)
		return
	}
	channel, db := "demo.Task", a.db.WithContext(r.Context())
	if r.URL.Query().Has("mine") {
		channel, db = "user:"+user, db.Where("assignee = ?", user)
	}
	h, err := a.bus.History(r.Context(), channel, nil)
	if err != nil {
		a.respond(w, err)
		return
	}
	tasks, err := board{db: db}.Tasks()
	if err != nil {
		a.respond(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"position": h.Position, "rows": tasks})
}

// errBadInput is answered with 400 and its message.
var errBadInput = errors.New("bad input")

func (a *App) respond(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, errBadInput):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, gorm.ErrRecordNotFound):
		http.Error(w, "no such task", http.StatusNotFound)
	default:
		a.log.Error("demo: write", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// taskForm reads and checks a task's fields from a form.
func taskForm(r *http.Request) (Task, error) {
	t := Task{
		Title:    strings.TrimSpace(r.FormValue("title")),
		Status:   r.FormValue("status"),
		Assignee: r.FormValue("assignee"),
	}
	if t.Status == "" {
		t.Status = "todo"
	}
	switch {
	case t.Title == "" || len(t.Title) > 200:
		return t, fmt.Errorf("%w: a title of 1 to 200 characters is needed", errBadInput)
	case !slices.Contains(statuses, t.Status):
		return t, fmt.Errorf("%w: unknown status %q", errBadInput, t.Status)
	case t.Assignee != "" && !slices.Contains(Users, t.Assignee):
		return t, fmt.Errorf("%w: unknown user %q", errBadInput, t.Assignee)
	}
	return t, nil
}

func taskID(r *http.Request) (uint, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: bad task id", errBadInput)
	}
	return uint(id), nil
}

// createTask: the plugin publishes a create event once the insert commits.
// It answers the task, which the page shows at once.
func (a *App) createTask(w http.ResponseWriter, r *http.Request) {
	t, err := taskForm(r)
	if err == nil {
		err = a.db.WithContext(r.Context()).Create(&t).Error
	}
	a.respondTask(w, t, err)
}

// respondTask answers t as JSON, or err as respond does.
func (a *App) respondTask(w http.ResponseWriter, t Task, err error) {
	if err != nil {
		a.respond(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(t)
}

// updateTask assigns only the fields that changed, so the update event's
// meta.changed names them, and answers the task as it now is.
func (a *App) updateTask(w http.ResponseWriter, r *http.Request) {
	id, err := taskID(r)
	if err != nil {
		a.respond(w, err)
		return
	}
	form, err := taskForm(r)
	if err != nil {
		a.respond(w, err)
		return
	}
	db := a.db.WithContext(r.Context())
	var t Task
	if err := db.First(&t, id).Error; err != nil {
		a.respond(w, err)
		return
	}
	changes := map[string]any{}
	if form.Title != t.Title {
		changes["title"] = form.Title
	}
	if form.Status != t.Status {
		changes["status"] = form.Status
	}
	if form.Assignee != t.Assignee {
		changes["assignee"] = form.Assignee
	}
	if len(changes) > 0 {
		if err = db.Model(&t).Updates(changes).Error; err == nil {
			err = db.First(&t, id).Error
		}
	}
	a.respondTask(w, t, err)
}

func (a *App) deleteTask(w http.ResponseWriter, r *http.Request) {
	id, err := taskID(r)
	if err == nil {
		res := a.db.WithContext(r.Context()).Delete(&Task{ID: id})
		if err = res.Error; err == nil && res.RowsAffected == 0 {
			err = gorm.ErrRecordNotFound
		}
	}
	a.respond(w, err)
}

// sendNote publishes a custom event to one user's private channel: only
// pages holding a token for "user:<to>" can receive it.
func (a *App) sendNote(w http.ResponseWriter, r *http.Request) {
	from, _, err := authorize(r)
	if err != nil {
		http.Error(w, "log in with ?user=", http.StatusUnauthorized)
		return
	}
	to, text := r.FormValue("to"), strings.TrimSpace(r.FormValue("text"))
	switch {
	case !slices.Contains(Users, to):
		err = fmt.Errorf("%w: unknown user %q", errBadInput, to)
	case text == "" || len(text) > 500:
		err = fmt.Errorf("%w: a note of 1 to 500 characters is needed", errBadInput)
	default:
		err = a.events.Emit(nil, "demo.Note", "note", map[string]string{"from": from, "text": text}, "user:"+to)
	}
	a.respond(w, err)
}

// Run serves the demo on cfg.Addr until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	a, err := New(cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = a.Close(context.Background())
		return err
	}
	base := "http://" + l.Addr().String()
	fmt.Fprintf(cfg.Stdout, "Telegraphy demo: a task board on SQLite (%s) with the in-process hub.\n", a.dbPath)
	fmt.Fprintf(cfg.Stdout, "Open %s/?user=alice and, in another window, %s/?user=bob\n", base, base)
	// Every timeout is set, so that idle keep-alive connections and slow
	// requests do not hold a goroutine each; WebSockets are hijacked, and
	// the hub keeps its own deadlines.
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The hub first: it closes the WebSockets, which the server does not
	// track once upgraded.
	return errors.Join(err, a.StopHub(sctx), srv.Shutdown(sctx), a.Close(sctx))
}
