package tokens_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// FuzzVerify checks that Verify never panics, classifies every refusal,
// and accepts only HS256 tokens signed with the secret that carry a jti
// and an unexpired exp. Seeds live in testdata/fuzz/FuzzVerify and are
// valid at epoch.
func FuzzVerify(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string) {
		v, err := tokens.NewVerifier(tokens.VerifierConfig{
			Secret: testSecret,
			Now:    func() time.Time { return epoch },
		})
		if err != nil {
			t.Fatal(err)
		}
		claims, err := v.Verify(context.Background(), token)
		if err != nil {
			if claims != nil {
				t.Fatalf("claims returned with error %v", err)
			}
			if r := tokens.Reason(err); r == "other" || r == "store" {
				t.Fatalf("refusal not classified as a token problem: %v (reason %q)", err, r)
			}
			return
		}
		if len(token) > tokens.MaxTokenLen {
			t.Fatalf("accepted a %d-byte token", len(token))
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d segments", len(parts))
		}
		strict := base64.RawURLEncoding.Strict()
		header, err := strict.DecodeString(parts[0])
		if err != nil {
			t.Fatalf("accepted a header that is not strict base64url: %v", err)
		}
		var h struct {
			Alg string `json:"alg"`
		}
		if err := json.Unmarshal(header, &h); err != nil || h.Alg != "HS256" {
			t.Fatalf("accepted header %q (%v)", header, err)
		}
		sig, err := strict.DecodeString(parts[2])
		if err != nil {
			t.Fatalf("accepted a signature that is not strict base64url: %v", err)
		}
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatal("accepted a token not signed with the secret")
		}
		if claims.ID == "" || claims.ExpiresAt == nil {
			t.Fatalf("accepted claims without jti or exp: %+v", claims)
		}
		if claims.ExpiresAt.Add(tokens.DefaultLeeway).Before(epoch) {
			t.Fatalf("accepted a token that expired at %v", claims.ExpiresAt)
		}
		// Each token connects once.
		if _, err := v.Verify(context.Background(), token); tokens.Reason(err) != "replayed" {
			t.Fatalf("second use = %v, want replayed", err)
		}
	})
}

// TestFuzzSeedsAccepted keeps the accepting path in the fuzz corpus: the
// seeds named valid* must verify at epoch.
func TestFuzzSeedsAccepted(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"valid", "valid-minimal"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", name))
		if err != nil {
			t.Fatal(err)
		}
		quoted, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\nstring(")
		quoted, ok2 := strings.CutSuffix(quoted, ")")
		token, err := strconv.Unquote(quoted)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s: not a fuzz seed file: %q", name, raw)
		}
		v := newVerifier(t, newClock())
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Errorf("seed %s refused: %v", name, err)
		}
	}
}
