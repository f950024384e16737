package telegraphy

import (
	"context"
	"net/http"

	"github.com/telegraphy-go/telegraphy/broker"
)

// SessionHeader is the HTTP header in which a page sends its hub
// connection's session id with its own requests: telegraphy.js's
// t.headers() returns it, and OriginMiddleware reads it.
const SessionHeader = "X-Telegraphy-Session"

type originKey struct{}

// WithOrigin returns a copy of ctx saying that the request being served
// came from the hub connection with session id session (the page's
// t.session, sent in SessionHeader), made by subject, the user the
// application authenticated. Events of writes made with the context
// (db.WithContext(ctx), Emit given such a db) are then not delivered to
// that one connection; every other connection, the same user's other
// tabs included, still gets them.
//
// The hub skips the connection only when its session id is session AND
// its token's subject is subject, so a session id copied from another
// user's page hides nothing from that user. subject must therefore be
// the authenticated user, never a value the request supplies. An empty
// session or subject, one longer than broker.MaxOriginLength bytes, or
// one holding a control character returns ctx unchanged: nothing is
// hidden from anybody.
func WithOrigin(ctx context.Context, session, subject string) context.Context {
	o := broker.Origin{Session: session, Subject: subject}
	if o.IsZero() || o.Check() != nil {
		return ctx
	}
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin WithOrigin put in ctx, and whether there
// is one.
func OriginFrom(ctx context.Context) (broker.Origin, bool) {
	if ctx == nil {
		return broker.Origin{}, false
	}
	o, ok := ctx.Value(originKey{}).(broker.Origin)
	return o, ok
}

// OriginMiddleware returns middleware that puts the origin of each
// request carrying SessionHeader into its context (WithOrigin), with the
// subject subjectOf returns for the request: the authenticated user, as
// the app's tokens name it in their sub claim ("" for a request without
// one, which then stamps nothing). Install it inside the app's
// authentication, so that subjectOf can read the user it found.
// Handlers then write with db.WithContext(r.Context()).
func OriginMiddleware(subjectOf func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if session := r.Header.Get(SessionHeader); session != "" {
				if subject := subjectOf(r); subject != "" {
					r = r.WithContext(WithOrigin(r.Context(), session, subject))
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// stampOrigin gives msgs the origin ctx carries, if any.
func stampOrigin(ctx context.Context, msgs []broker.Message) {
	o, ok := OriginFrom(ctx)
	if !ok {
		return
	}
	for i := range msgs {
		msgs[i].Origin = o
	}
}
