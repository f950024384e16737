package tokens

import (
	"encoding/json"
	"errors"
	"net/http"
)

// HandlerConfig configures Handler.
type HandlerConfig struct {
	// Issuer mints the tokens. Required.
	Issuer *Issuer
	// Authorize returns the subject and channel patterns for the request's
	// user, from the application's own login (session cookie, header).
	// Returning an error wrapping ErrUnauthorized answers 401, ErrForbidden
	// 403, and any other error 500. Required.
	Authorize func(r *http.Request) (subject string, channels []string, err error)
	// Info returns the info claim for the request's user (shown to the
	// subscribers of channels with presence; a JSON object of at most
	// MaxInfoLen bytes), called after Authorize succeeds. An error, or an
	// info the Issuer refuses, answers 500. Zero value means no info.
	Info func(r *http.Request, subject string) (json.RawMessage, error)
}

// Handler returns the token endpoint an application mounts behind its own
// login, e.g. at /telegraphy-token, for the JavaScript client's getToken.
// It answers GET and POST with a fresh token as text/plain (no trailing
// newline), and every response with Cache-Control: no-store so no cache
// keeps a token. Other methods get 405. The body is not readable across
// origins unless the application adds CORS headers itself.
//
// Handler panics when Issuer or Authorize is nil, as a wiring mistake.
func Handler(cfg HandlerConfig) http.Handler {
	if cfg.Issuer == nil {
		panic("tokens: Handler needs an Issuer")
	}
	if cfg.Authorize == nil {
		panic("tokens: Handler needs an Authorize function")
	}
	return &handler{cfg: cfg}
}

type handler struct {
	cfg HandlerConfig
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		hdr.Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	subject, channels, err := h.cfg.Authorize(r)
	switch {
	case errors.Is(err, ErrUnauthorized):
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	case errors.Is(err, ErrForbidden):
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	case err != nil:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var info json.RawMessage
	if h.cfg.Info != nil {
		if info, err = h.cfg.Info(r, subject); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
	}
	token, err := h.cfg.Issuer.IssueInfo(subject, channels, info)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte(token))
}
