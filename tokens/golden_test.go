package tokens_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// update rewrites the golden token: go test ./tokens/ -run TestGoldenToken -update
var update = flag.Bool("update", false, "rewrite ../testdata/token.json")

// goldenToken is testdata/token.json: a token as the issuer mints it, the
// secret and time it was minted with, and its decoded header and claims.
type goldenToken struct {
	Secret string         `json:"secret"`
	Token  string         `json:"token"`
	Header map[string]any `json:"header"`
	Claims map[string]any `json:"claims"`
}

// decodeJWT returns the header and claims of a token.
func decodeJWT(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: %d parts, want 3", token, len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// TestGoldenToken: tokens keep the shape that other languages' minters
// and verifiers rely on. The golden token still verifies, and a token
// issued now has its header and claims (but for the random jti).
func TestGoldenToken(t *testing.T) {
	path := filepath.Join("..", "testdata", "token.json")
	iat := time.Date(2026, 11, 25, 17, 37, 3, 0, time.UTC)
	now := func() time.Time { return iat }
	secret := "a golden secret of at least 32 bytes"
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: []byte(secret), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := issuer.Issue("17", []string{"shop.Order", "shop.Order:*", "user:17"})
	if err != nil {
		t.Fatal(err)
	}
	header, claims := decodeJWT(t, fresh)
	if *update {
		g := goldenToken{Secret: secret, Token: fresh, Header: header, Claims: claims}
		b, err := json.MarshalIndent(g, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var g goldenToken
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		t.Fatal(err)
	}

	// A fresh token has the golden header and claims, its jti aside.
	if jti, _ := claims["jti"].(string); jti == "" || (jti == g.Claims["jti"] && !*update) {
		t.Errorf("fresh jti %q: want a new, non-empty one", jti)
	}
	claims["jti"] = g.Claims["jti"]
	if !reflect.DeepEqual(header, g.Header) || !reflect.DeepEqual(claims, g.Claims) {
		t.Errorf("issued token changed: tokens are a contract with other languages.\n got header %v claims %v\nwant header %v claims %v\n(if the change is meant, run go test ./tokens/ -run TestGoldenToken -update and say so in the commit)",
			header, claims, g.Header, g.Claims)
	}

	// The golden token verifies, to the golden claims.
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: []byte(g.Secret), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), g.Token)
	if err != nil {
		t.Fatalf("golden token refused: %v", err)
	}
	b, _ := json.Marshal(got)
	var gotClaims map[string]any
	_ = json.Unmarshal(b, &gotClaims)
	if !reflect.DeepEqual(gotClaims, g.Claims) {
		t.Errorf("golden token verified to %v, want %v", gotClaims, g.Claims)
	}
}
