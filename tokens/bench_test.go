package tokens_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// BenchmarkVerify measures the connect-time cost of a token: Verify (parse,
// HS256 check, claims, replay mark) against a bare jwt.Parse of the same
// tokens as the baseline. Compare the two sub-benchmarks' ns/op.
func BenchmarkVerify(b *testing.B) {
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	// Distinct tokens, since each verifies once.
	toks := make([]string, 100_000)
	for i := range toks {
		if toks[i], err = issuer.Issue(strconv.Itoa(i), []string{"shop.Order", "user:" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("baseline=jwt.Parse", func(b *testing.B) {
		p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}))
		key := func(*jwt.Token) (any, error) { return testSecret, nil }
		i := 0
		for b.Loop() {
			if _, err := p.ParseWithClaims(toks[i%len(toks)], &tokens.Claims{}, key); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Verify", func(b *testing.B) {
		i := 0
		var v *tokens.Verifier
		for b.Loop() {
			if i%len(toks) == 0 {
				b.StopTimer()
				if v, err = tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			if _, err := v.Verify(context.Background(), toks[i%len(toks)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkIssue measures minting one token.
func BenchmarkIssue(b *testing.B) {
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := issuer.Issue("17", []string{"shop.Order", "user:17"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryStoreUse measures marking a fresh jti in a store that
// holds about a million live marks, expiring as many as it adds.
func BenchmarkMemoryStoreUse(b *testing.B) {
	clk := newClock()
	s := tokens.NewMemoryStore(tokens.MemoryStoreConfig{Now: clk.Now})
	ctx := context.Background()
	const live = 1_000_000
	i := 0
	use := func() {
		// Each mark lives for live ticks of a nanosecond clock.
		clk.Advance(time.Nanosecond)
		if fresh, err := s.Use(ctx, strconv.Itoa(i), clk.Now().Add(live*time.Nanosecond)); !fresh || err != nil {
			b.Fatalf("Use %d = %v, %v", i, fresh, err)
		}
		i++
	}
	for range live {
		use()
	}
	for b.Loop() {
		use()
	}
	b.ReportMetric(float64(s.Len()), "marks")
}
