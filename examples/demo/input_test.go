package demo_test

import (
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/telegraphy-go/telegraphy/examples/demo"
)

// countingReader yields n bytes of 'x' and counts what was read.
type countingReader struct {
	left int64
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > r.left {
		n = r.left
	}
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.left -= n
	r.read.Add(n)
	return int(n), nil
}

// The demo's write endpoints read their forms bounded: a 100 MiB body is
// refused (413) after a small part of it, the largest field the demo takes
// being a 500-byte note.
func TestDemoUnboundedBody(t *testing.T) {
	_, base := startDemo(t)
	const size = 100 << 20
	pad := &countingReader{left: size}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		_ = mw.WriteField("title", "a task")
		fw, _ := mw.CreateFormFile("pad", "pad.bin")
		_, err := io.Copy(fw, pad)
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequest(http.MethodPost, base+"/tasks", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := pad.read.Load(); got > 1<<20 && status < 400 {
		t.Errorf("POST /tasks with a %d MiB multipart body: the server read %d MiB of it and answered %d; want it refused (413) after a small bound",
			size>>20, got>>20, status)
	}
}

// The database is opened as a SQLite URI: a --dir holding '?' or '#' must
// not cut the path there (the database in another file, outside the
// directory, its pragmas lost).
func TestDemoDirWithQueryCharacters(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"a?b", "c#d"} {
		dir := filepath.Join(root, name)
		app, err := demo.New(demo.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Errorf("--dir %q: %v", dir, err)
			continue
		}
		_ = app.Close(context.Background())
		if _, err := os.Stat(filepath.Join(dir, "demo.db")); err != nil {
			t.Errorf("--dir %q: no demo.db in it (%v)", dir, err)
		}
		stray := filepath.Join(root, name[:1])
		if _, err := os.Stat(stray); err == nil {
			t.Errorf("--dir %q: the database was written to %s instead", dir, stray)
		}
	}
}
