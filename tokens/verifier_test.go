package tokens_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// sign mints a token the way any application would, with a plain call to a
// JWT library and no help from this package.
func sign(t testing.TB, method jwt.SigningMethod, claims jwt.MapClaims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// handMade builds a token from a raw header and claims, signed with
// HMAC-SHA256 over the secret whatever the header says.
func handMade(t testing.TB, header, claims map[string]any, secret []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := b64(h) + "." + b64(c)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// goodClaims are valid claims at epoch for a plain JWT library.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":      "17",
		"iat":      epoch.Unix(),
		"exp":      epoch.Add(time.Minute).Unix(),
		"jti":      "j-1",
		"channels": []string{"shop.Order", "shop.Order:*"},
	}
}

func with(c jwt.MapClaims, key string, value any) jwt.MapClaims {
	c[key] = value
	if value == nil {
		delete(c, key)
	}
	return c
}

func newVerifier(t testing.TB, clk *clock) *tokens.Verifier {
	t.Helper()
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret, Now: clk.Now})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	hs256 := jwt.SigningMethodHS256
	good := sign(t, hs256, goodClaims(), testSecret)
	parts := strings.Split(good, ".")

	tests := []struct {
		name    string
		token   func(t *testing.T) string
		advance time.Duration // clock moves this far after minting
		want    error         // nil: accepted
		reason  string
	}{
		{name: "issued by Issuer", token: func(t *testing.T) string {
			s, err := issuer.Issue("17", []string{"shop.Order", "shop.Order:*"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{name: "minted by a plain JWT library", token: func(t *testing.T) string { return good }},
		{name: "no sub", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "sub", nil), testSecret)
		}},
		{name: "no iat", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "iat", nil), testSecret)
		}},
		{name: "expired within leeway", advance: time.Minute + 4*time.Second,
			token: func(t *testing.T) string { return good }},
		{name: "expired beyond leeway", advance: time.Minute + 6*time.Second,
			token: func(t *testing.T) string { return good }, want: tokens.ErrExpired, reason: "expired"},
		{name: "expired long ago", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "exp", epoch.Add(-time.Hour).Unix()), testSecret)
		}, want: tokens.ErrExpired, reason: "expired"},
		{name: "nbf in the future", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "nbf", epoch.Add(30*time.Second).Unix()), testSecret)
		}, want: tokens.ErrNotYetValid, reason: "not_yet_valid"},
		{name: "iat in the future", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "iat", epoch.Add(30*time.Second).Unix()), testSecret)
		}, want: tokens.ErrNotYetValid, reason: "not_yet_valid"},
		{name: "lifetime beyond an hour", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "exp", epoch.Add(2*time.Hour).Unix()), testSecret)
		}, want: tokens.ErrLifetime, reason: "lifetime"},
		{name: "forged with another secret", token: func(t *testing.T) string {
			return sign(t, hs256, goodClaims(), []byte("another secret of thirty-two bytes!!"))
		}, want: tokens.ErrSignature, reason: "signature"},
		{name: "claims changed after signing", token: func(t *testing.T) string {
			c := b64([]byte(`{"sub":"1","iat":` + strconv.FormatInt(epoch.Unix(), 10) + `,"exp":` + strconv.FormatInt(epoch.Add(time.Minute).Unix(), 10) + `,"jti":"j-1","channels":["*"]}`))
			return parts[0] + "." + c + "." + parts[2]
		}, want: tokens.ErrSignature, reason: "signature"},
		{name: "signature stripped", token: func(t *testing.T) string {
			return parts[0] + "." + parts[1] + "."
		}, want: tokens.ErrSignature, reason: "signature"},
		{name: "alg none", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, goodClaims(), jwt.UnsafeAllowNoneSignatureType)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "alg NoNe with HMAC signature", token: func(t *testing.T) string {
			return handMade(t, map[string]any{"alg": "NoNe", "typ": "JWT"}, goodClaims(), testSecret)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "RS256 label with HMAC signature", token: func(t *testing.T) string {
			return handMade(t, map[string]any{"alg": "RS256", "typ": "JWT"}, goodClaims(), testSecret)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "RS256 label with garbage signature", token: func(t *testing.T) string {
			h := b64([]byte(`{"alg":"RS256","typ":"JWT"}`))
			return h + "." + parts[1] + "." + b64([]byte("garbage"))
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "real RS256", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, goodClaims(), rsaKey)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "HS512 with the secret", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS512, goodClaims(), testSecret)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "unknown alg", token: func(t *testing.T) string {
			return handMade(t, map[string]any{"alg": "XS999"}, goodClaims(), testSecret)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "alg missing", token: func(t *testing.T) string {
			return handMade(t, map[string]any{"typ": "JWT"}, goodClaims(), testSecret)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "alg not a string", token: func(t *testing.T) string {
			return handMade(t, map[string]any{"alg": 256}, goodClaims(), testSecret)
		}, want: tokens.ErrAlgorithm, reason: "algorithm"},
		{name: "missing exp", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "exp", nil), testSecret)
		}, want: tokens.ErrMissingClaim, reason: "missing_claim"},
		{name: "missing jti", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "jti", nil), testSecret)
		}, want: tokens.ErrMissingClaim, reason: "missing_claim"},
		{name: "empty jti", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "jti", ""), testSecret)
		}, want: tokens.ErrMissingClaim, reason: "missing_claim"},
		{name: "exp not a number", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "exp", "tomorrow"), testSecret)
		}, want: tokens.ErrMalformed, reason: "malformed"},
		{name: "channels not a list", token: func(t *testing.T) string {
			return sign(t, hs256, with(goodClaims(), "channels", "*"), testSecret)
		}, want: tokens.ErrMalformed, reason: "malformed"},
		{name: "empty", token: func(t *testing.T) string { return "" },
			want: tokens.ErrMalformed, reason: "malformed"},
		{name: "one segment", token: func(t *testing.T) string { return parts[0] },
			want: tokens.ErrMalformed, reason: "malformed"},
		{name: "four segments", token: func(t *testing.T) string { return good + ".x" },
			want: tokens.ErrMalformed, reason: "malformed"},
		{name: "bad base64", token: func(t *testing.T) string { return "!!." + parts[1] + "." + parts[2] },
			want: tokens.ErrMalformed, reason: "malformed"},
		{name: "padded base64", token: func(t *testing.T) string { return good + "=" },
			want: tokens.ErrMalformed, reason: "malformed"},
		{name: "longer than MaxTokenLen", token: func(t *testing.T) string {
			pad := strings.Repeat("x", tokens.MaxTokenLen)
			return sign(t, hs256, with(goodClaims(), "pad", pad), testSecret)
		}, want: tokens.ErrMalformed, reason: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			v := newVerifier(t, clk)
			token := tt.token(t)
			clk.Advance(tt.advance)
			claims, err := v.Verify(context.Background(), token)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if got := tokens.Reason(err); got != tt.reason {
				t.Errorf("Reason = %q, want %q", got, tt.reason)
			}
			if err != nil {
				if claims != nil {
					t.Errorf("claims %+v returned with error", claims)
				}
				return
			}
			if claims.ID == "" || claims.ExpiresAt == nil {
				t.Errorf("claims lack jti or exp: %+v", claims)
			}
			if sub := claims.Subject; sub != "17" && sub != "" {
				t.Errorf("sub = %q", sub)
			}
			if want := []string{"shop.Order", "shop.Order:*"}; !slices.Equal(claims.Channels, want) {
				t.Errorf("channels = %q, want %q", claims.Channels, want)
			}
		})
	}
}

func TestVerifyRefusesReplay(t *testing.T) {
	t.Parallel()
	clk := newClock()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret, TTL: 2 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	store := tokens.NewMemoryStore(tokens.MemoryStoreConfig{Now: clk.Now})
	hubA, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret, Store: store, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	hubB, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret, Store: store, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	token, err := issuer.Issue("17", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := hubA.Verify(ctx, token); err != nil {
		t.Fatalf("first use: %v", err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		hub     *tokens.Verifier
		want    error
	}{
		{"again on the same hub", 0, hubA, tokens.ErrReplayed},
		{"on another hub sharing the store", 0, hubB, tokens.ErrReplayed},
		// Past exp but inside the leeway the token would still be
		// accepted, so its mark must still be there.
		{"after exp, inside the leeway", 2*time.Second + 4*time.Second, hubA, tokens.ErrReplayed},
		{"after exp and the leeway", 2 * time.Second, hubA, tokens.ErrExpired},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if _, err := s.hub.Verify(ctx, token); !errors.Is(err, s.want) {
			t.Errorf("%s: Verify = %v, want %v", s.name, err, s.want)
		}
	}
	if got := tokens.Reason(func() error { _, err := hubA.Verify(ctx, token); return err }()); got != "expired" {
		t.Errorf("Reason = %q", got)
	}
}

func TestVerifyConcurrentUseOfOneToken(t *testing.T) {
	t.Parallel()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	token, err := issuer.Issue("17", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = v.Verify(context.Background(), token)
		})
	}
	close(start)
	wg.Wait()
	accepted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			accepted++
		case !errors.Is(err, tokens.ErrReplayed):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d of %d concurrent uses accepted, want exactly 1", accepted, n)
	}
}

func TestVerifyRefusesWhenStoreFull(t *testing.T) {
	t.Parallel()
	clk := newClock()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	store := tokens.NewMemoryStore(tokens.MemoryStoreConfig{MaxEntries: 1, Now: clk.Now})
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret, Store: store, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := issuer.Issue("1", nil)
	second, _ := issuer.Issue("2", nil)
	if _, err := v.Verify(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), second)
	if !errors.Is(err, tokens.ErrStore) || !errors.Is(err, tokens.ErrStoreFull) || tokens.Reason(err) != "store" {
		t.Fatalf("Verify with a full store = %v (reason %q), want ErrStore wrapping ErrStoreFull", err, tokens.Reason(err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	third, _ := issuer.Issue("3", nil)
	if _, err := v.Verify(ctx, third); !errors.Is(err, tokens.ErrStore) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context = %v", err)
	}
}

func TestShortSecretRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret []byte
		want   error
	}{
		{"nil", nil, tokens.ErrShortSecret},
		{"31 bytes", testSecret[:31], tokens.ErrShortSecret},
		{"32 bytes", testSecret, nil},
		{"64 bytes", append(slices.Clone(testSecret), testSecret...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: tt.secret}); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("NewIssuer = %v, want %v", err, tt.want)
			}
			if _, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: tt.secret}); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("NewVerifier = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{tokens.ErrMalformed, "malformed"},
		{tokens.ErrSignature, "signature"},
		{tokens.ErrAlgorithm, "algorithm"},
		{tokens.ErrExpired, "expired"},
		{tokens.ErrNotYetValid, "not_yet_valid"},
		{tokens.ErrLifetime, "lifetime"},
		{tokens.ErrMissingClaim, "missing_claim"},
		{tokens.ErrReplayed, "replayed"},
		{tokens.ErrStore, "store"},
		{tokens.ErrStoreFull, "store"},
		{errors.Join(errors.New("context"), tokens.ErrReplayed), "replayed"},
		{errors.New("something else"), "other"},
	}
	for _, tt := range tests {
		if got := tokens.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
