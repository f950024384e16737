package jsclient_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/jsclient"
)

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/telegraphy/", http.StripPrefix("/telegraphy", jsclient.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		name, path, contentType string
		body                    []byte
	}{
		{"script", "/telegraphy/telegraphy.js", "text/javascript; charset=utf-8", jsclient.Script()},
		{"types", "/telegraphy/telegraphy.d.ts", "application/typescript; charset=utf-8", jsclient.Types()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := get(t, srv.URL+tc.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if !bytes.Equal(body, tc.body) || len(body) == 0 {
				t.Errorf("body differs from the embedded file (%d bytes)", len(body))
			}
			etag := res.Header.Get("ETag")
			if len(etag) < 10 || etag[0] != '"' || etag[len(etag)-1] != '"' {
				t.Fatalf("ETag %q is not a strong entity tag", etag)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=3600" {
				t.Errorf("Cache-Control %q", cc)
			}
			res, body = get(t, srv.URL+tc.path, map[string]string{"If-None-Match": etag})
			if res.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("If-None-Match %s: status %d, %d bytes; want 304 and no body", etag, res.StatusCode, len(body))
			}
			res, _ = get(t, srv.URL+tc.path, map[string]string{"If-None-Match": `"other", W/` + etag})
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match list holding the weak form: status %d, want 304", res.StatusCode)
			}
			res, _ = get(t, srv.URL+tc.path, map[string]string{"If-None-Match": `"stale"`})
			if res.StatusCode != http.StatusOK {
				t.Errorf("stale If-None-Match: status %d, want 200", res.StatusCode)
			}
		})
	}
	head, err := http.Head(srv.URL + "/telegraphy/telegraphy.js")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != http.StatusOK || head.ContentLength != int64(len(jsclient.Script())) || head.Header.Get("ETag") == "" {
		t.Errorf("HEAD: status %d, length %d, ETag %q", head.StatusCode, head.ContentLength, head.Header.Get("ETag"))
	}
	if res, _ := get(t, srv.URL+"/telegraphy/other.js", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: status %d, want 404", res.StatusCode)
	}
	res, err := http.Post(srv.URL+"/telegraphy/telegraphy.js", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", res.StatusCode)
	}
}

// TestHubServesScript checks that a hub mounted at /telegraphy/ serves this
// package's script, as pages import it from there.
func TestHubServesScript(t *testing.T) {
	hs := &hubServer{broker: broker.NewMemory(), secret: testSecret, addr: "127.0.0.1:0"}
	if err := hs.start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := hs.stop(); err != nil {
			t.Error(err)
		}
		_ = hs.broker.Close(context.Background())
	}()
	res, body := get(t, "http://"+hs.addr+"/telegraphy/telegraphy.js", nil)
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, jsclient.Script()) {
		t.Fatalf("GET /telegraphy/telegraphy.js from the hub: status %d, %d bytes, want the embedded script", res.StatusCode, len(body))
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
}
