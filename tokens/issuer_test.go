package tokens_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/telegraphy-go/telegraphy/tokens"
)

func TestIssuerLifetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ttl     time.Duration
		claims  tokens.Claims
		wantExp time.Time
		wantIat time.Time
	}{
		{name: "default TTL", wantExp: epoch.Add(60 * time.Second), wantIat: epoch},
		{name: "custom TTL", ttl: 10 * time.Second, wantExp: epoch.Add(10 * time.Second), wantIat: epoch},
		{name: "exp set by caller", ttl: 10 * time.Second,
			claims:  tokens.Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(epoch.Add(30 * time.Minute))}},
			wantExp: epoch.Add(30 * time.Minute), wantIat: epoch},
		{name: "iat set by caller",
			claims:  tokens.Claims{RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(epoch.Add(-time.Second))}},
			wantExp: epoch.Add(60 * time.Second), wantIat: epoch.Add(-time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret, TTL: tt.ttl, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			token, err := issuer.IssueClaims(tt.claims)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := newVerifier(t, clk).Verify(context.Background(), token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !claims.ExpiresAt.Equal(tt.wantExp) || !claims.IssuedAt.Equal(tt.wantIat) {
				t.Errorf("exp, iat = %v, %v; want %v, %v", claims.ExpiresAt, claims.IssuedAt, tt.wantExp, tt.wantIat)
			}
			if len(claims.ID) < 22 {
				t.Errorf("jti %q: want at least 128 random bits", claims.ID)
			}
		})
	}
}

func TestIssuerFreshIDs(t *testing.T) {
	t.Parallel()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 1000 {
		token, err := issuer.Issue("17", []string{"user:17"})
		if err != nil {
			t.Fatal(err)
		}
		// Every token verifies once: no two share a jti.
		claims, err := v.Verify(context.Background(), token)
		if err != nil {
			t.Fatalf("token %d: %v", len(seen), err)
		}
		if seen[claims.ID] || claims.Subject != "17" || !slices.Equal(claims.Channels, []string{"user:17"}) {
			t.Fatalf("claims %+v (jti seen before: %v)", claims, seen[claims.ID])
		}
		seen[claims.ID] = true
	}
}

func TestIssuerConfigRefused(t *testing.T) {
	t.Parallel()
	if _, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret, TTL: -time.Second}); err == nil {
		t.Fatal("NewIssuer accepted a negative TTL")
	}
	secret := slices.Clone(testSecret)
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	secret[0] ^= 0xff // the issuer keeps its own copy
	token, err := issuer.Issue("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newVerifier(t, &clock{t: time.Now()}).Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify after the caller changed its secret slice: %v", err)
	}
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		patterns []string
		channel  string
		want     bool
	}{
		{[]string{"shop.Order"}, "shop.Order", true},
		{[]string{"shop.Order"}, "shop.Order:42", false},
		{[]string{"shop.Order"}, "shop.Orders", false},
		{[]string{"shop.Order:*"}, "shop.Order:42", true},
		{[]string{"shop.Order:*"}, "shop.Order", false},
		{[]string{"shop.Order:*"}, "shop.Order:", true},
		{[]string{"shop.Order:*"}, "shop.OrderLine:1", false},
		{[]string{"shop.*"}, "shop.Order:42", true},
		{[]string{"shop.*"}, "blog.Post", false},
		{[]string{"*"}, "anything:at:all", true},
		{[]string{"*"}, "", true},
		{[]string{"shop.*.x"}, "shop.Order.x", false},
		{[]string{"shop.*.x"}, "shop.*.x", true},
		{[]string{"user:17"}, "user:170", false},
		{[]string{"user:17", "shop.Order:*"}, "shop.Order:9", true},
		{[]string{""}, "shop.Order", false},
		{nil, "shop.Order", false},
		{[]string{}, "", false},
	}
	for _, tt := range tests {
		if got := tokens.Allowed(tt.patterns, tt.channel); got != tt.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tt.patterns, tt.channel, got, tt.want)
		}
	}
}
