package tokens

import (
	"context"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// The info claim is forwarded verbatim by hubs into WebSocket text frames
// (hub/presence.go: "info is a compact JSON object, checked by tokens"), so
// the check refuses bytes that are not UTF-8: JSON text is UTF-8 (RFC
// 8259 §8.1) and a text frame that is not is fatal to a browser (RFC 6455
// §8.1).
func TestInfoInvalidUTF8(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	iss, err := NewIssuer(IssuerConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	bad := json.RawMessage("{\"name\":\"\xff\xfe\"}")
	tok, err := iss.IssueInfo("17", []string{"doc:*"}, bad)
	if err == nil {
		t.Errorf("Issuer.IssueInfo signed info %q, which is not UTF-8", bad)
	}
	// A token minted elsewhere (any JWT library) with the same claim.
	if tok == "" {
		tok, err = iss.IssueClaims(Claims{Info: bad})
		if err != nil {
			t.Skipf("cannot mint: %v", err)
		}
	}
	v, err := NewVerifier(VerifierConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok)
	if err == nil && !utf8.Valid(c.Info) {
		t.Errorf("Verify accepted info %q, which is not UTF-8 (want ErrMalformed)", c.Info)
	}
}
