// Package tokens issues and verifies the short-lived, single-use tickets
// with which a browser connects to a Telegraphy hub.
//
// # Claims
//
// A token is a JWT signed with HS256 and the secret the application and the
// hubs share (at least MinSecretLen, 32, bytes; TELEGRAPHY_SECRET for the
// telegraphy command). Its claims, as Claims holds them:
//
//	sub       the user, shown to the client in "welcome"; optional
//	exp       expiry, required
//	iat       issue time; checked when present
//	jti       a unique ID, required: each token connects once
//	channels  the patterns the holder may subscribe to (see Allowed):
//	          "shop.Order", "shop.Order:*", "user:17", or "*"
//
// A pattern ending in "*" is a prefix and matches whatever follows it:
// "shop.Order:1*" grants "shop.Order:10" and "shop.Order:1999" too, and
// "user:42*" grants "user:420". End a prefix at a separator ("user:42:*")
// and grant a single record by its exact name ("shop.Order:1").
//
// Every other algorithm is refused, "none" and RS256 included, as are tokens
// longer than MaxTokenLen.
//
// # Lifetime and single use
//
// An Issuer mints tokens valid for DefaultTTL (60 seconds) unless told
// otherwise: long enough to render a page and open its WebSocket. A
// Verifier accepts a token until its exp plus a small leeway for clock skew
// (DefaultLeeway, 5 seconds), refuses one whose exp lies more than
// MaxLifetime ahead, and records its jti in a ReplayStore until then, so a
// token that leaks from a page, a log or a proxy cannot open a second
// connection. A client that reconnects asks the application for a fresh
// token (getToken in the JavaScript client).
//
// MemoryStore is the store of a single process. Hubs behind a load
// balancer share the Redis broker's store, so a token used on one hub is
// refused on every other.
//
// # Minting tokens elsewhere
//
// Any JWT library can mint tokens: HS256, the shared secret, and the claims
// above. In Python with PyJWT:
//
//	jwt.encode({"sub": "17", "channels": ["shop.Order", "user:17"],
//	            "jti": uuid.uuid4().hex, "iat": now, "exp": now + 60},
//	           secret, algorithm="HS256")
//
// In Node.js with jsonwebtoken (which sets iat itself):
//
//	jwt.sign({ sub: "17", channels: ["shop.Order", "user:17"] }, secret,
//	         { algorithm: "HS256", expiresIn: 60, jwtid: crypto.randomUUID() })
//
// For a quick test, "telegraphy token --sub 17 --channels 'shop.Order:*'"
// prints one.
//
// # The token endpoint
//
// Handler serves fresh tokens to the JavaScript client. The application
// mounts it behind its own login and tells it, through Authorize, who the
// request's user is and which channels that user may see:
//
//	mux.Handle("/telegraphy-token", tokens.Handler(tokens.HandlerConfig{
//		Issuer: issuer,
//		Authorize: func(r *http.Request) (string, []string, error) {
//			u := currentUser(r)
//			if u == nil {
//				return "", nil, tokens.ErrUnauthorized
//			}
//			return u.ID, []string{"shop.Order", "user:" + u.ID}, nil
//		},
//	}))
//
// # Configuration
//
// The project's packages share one rule for configuration values: a zero
// field means the default its comment documents; a negative value is an
// error naming the field, returned by the constructor (NewIssuer, NewVerifier), except in
// the fields whose comment gives negative values a meaning (none, or no
// limit): here VerifierConfig.Leeway (none) and MaxLifetime (no limit).
//
// NewMemoryStore cannot fail: it takes a negative MaxEntries as zero.
//
// # Concurrency
//
// Issuer, Verifier and MemoryStore are safe for concurrent use from any
// goroutine, as must be every ReplayStore. Of many concurrent Verify calls
// with one token, at most one succeeds. Nothing in the package starts a
// goroutine: MemoryStore drops expired marks during Use.
//
// # Delivery
//
// The package delivers no events; what it guards is the connection. A
// token is accepted at most once per store. When the store cannot answer
// (an error, or a MemoryStore holding MaxEntries live marks) Verify refuses
// the token with ErrStore rather than risk a replay.
package tokens
