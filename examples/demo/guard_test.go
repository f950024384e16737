package demo_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCrossSiteRequests: a POST from another origin, and any request
// under a Host name that is not localhost (DNS rebinding), are refused;
// the demo's own pages, and clients without Origin, are served.
func TestCrossSiteRequests(t *testing.T) {
	_, base := startDemo(t)
	do := func(method, path, host, origin string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(url.Values{"title": {"x"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	u, _ := url.Parse(base)
	for _, tc := range []struct {
		name, method, path, host, origin string
		want                             int
	}{
		{"cross-origin stop", "POST", "/hub/stop", "", "https://evil.example", 403},
		{"cross-origin task", "POST", "/tasks", "", "http://localhost:1", 403},
		{"rebinding", "GET", "/", "evil.example:" + u.Port(), "", 403},
		{"rebinding post", "POST", "/tasks", "evil.example:" + u.Port(), "http://evil.example:" + u.Port(), 403},
		{"same origin", "POST", "/tasks", "", base, 200},
		{"no origin", "POST", "/tasks", "", "", 200},
		{"localhost", "GET", "/", "localhost:" + u.Port(), "", 200},
	} {
		if got := do(tc.method, tc.path, tc.host, tc.origin); got != tc.want {
			t.Errorf("%s: %s %s (Host %q, Origin %q): %d, want %d", tc.name, tc.method, tc.path, tc.host, tc.origin, got, tc.want)
		}
	}
	// The hub is still running: the cross-origin stop did nothing.
	resp, err := http.Get(base + "/telegraphy/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("hub health after a cross-origin stop: %d", resp.StatusCode)
	}
}
