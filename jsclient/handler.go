package jsclient

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

//go:embed telegraphy.js
var script []byte

//go:embed telegraphy.d.ts
var types []byte

// Script returns the source of telegraphy.js. The slice is shared: do not
// modify it.
func Script() []byte { return script }

// Types returns the source of telegraphy.d.ts. The slice is shared: do not
// modify it.
func Types() []byte { return types }

type asset struct {
	body        []byte
	etag        string
	contentType string
}

func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: contentType}
}

var assets = map[string]asset{
	"telegraphy.js":   newAsset(script, "text/javascript; charset=utf-8"),
	"telegraphy.d.ts": newAsset(types, "application/typescript; charset=utf-8"),
}

// Handler serves telegraphy.js and telegraphy.d.ts by the last element of
// the request path, so it works mounted anywhere (the hub serves it at
// <mount>/telegraphy.js). Responses carry a strong ETag computed from the
// content and "Cache-Control: public, max-age=3600"; a request whose
// If-None-Match holds that ETag gets 304 Not Modified. Other paths get 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("X-Content-Type-Options", "nosniff")
		if etagMatch(r.Header.Get("If-None-Match"), a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Content-Length", strconv.Itoa(len(a.body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(a.body)
	})
}

// etagMatch reports whether an If-None-Match header value names etag
// (weak comparison, as RFC 9110 asks for If-None-Match).
func etagMatch(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}
