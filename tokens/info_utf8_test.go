package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// The info claim is forwarded verbatim by hubs into WebSocket text frames
// (hub/presence.go: "info is a compact JSON object, checked by tokens"), so
// the checks refuse bytes that are not UTF-8: JSON text is UTF-8 (RFC
// 8259 §8.1) and a text frame that is not is fatal to a browser (RFC 6455
// §8.1). Issuer refuses to sign such an info; Verifier refuses a token
// signed elsewhere that carries one.
func TestInfoInvalidUTF8(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	iss, err := NewIssuer(IssuerConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	bad := json.RawMessage("{\"name\":\"\xff\xfe\"}")
	if tok, err := iss.IssueInfo("17", []string{"doc:*"}, bad); err == nil {
		t.Errorf("Issuer.IssueInfo signed info %q, which is not UTF-8: %s", bad, tok)
	}
	// Signed by hand: encoding/json would replace the bad bytes.
	const header = `{"alg":"HS256","typ":"JWT"}`
	now := time.Now().Unix()
	payload := `{"sub":"17","exp":` + strconv.FormatInt(now+60, 10) + `,"iat":` + strconv.FormatInt(now, 10) +
		`,"jti":"utf8-test","channels":["doc:*"],"info":` + string(bad) + `}`
	tok := testenv.SignHS256(secret, header, payload)
	v, err := NewVerifier(VerifierConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	// The same token with valid info is accepted: the refusal is the info's.
	good := `{"sub":"17","exp":` + strconv.FormatInt(now+60, 10) + `,"iat":` + strconv.FormatInt(now, 10) +
		`,"jti":"utf8-good","channels":["doc:*"],"info":{"name":"Ada"}}`
	if _, err := v.Verify(context.Background(), testenv.SignHS256(secret, header, good)); err != nil {
		t.Fatalf("a hand-signed token with valid info: %v", err)
	}
	c, err := v.Verify(context.Background(), tok)
	if err == nil {
		t.Fatalf("Verify accepted info %q, which is not UTF-8", c.Info)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("refused with %v, want ErrMalformed (as for an info that is not an object)", err)
	}
}
