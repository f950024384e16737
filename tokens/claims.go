package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a connection token. Subject (sub) names the user
// and may be empty; ExpiresAt (exp) and ID (jti) are required; IssuedAt
// (iat) is set by Issuer and checked when present. Channels lists the
// patterns the holder may subscribe to, as matched by Allowed.
type Claims struct {
	jwt.RegisteredClaims
	// Channels are channel patterns: an exact channel name, or a prefix
	// ending in "*" ("shop.Order:*"; "*" alone matches every channel). A
	// prefix matches whatever follows it: "shop.Order:1*" also grants
	// "shop.Order:10" (see Allowed).
	Channels []string `json:"channels,omitempty"`
	// Info is what the app tells other users about the holder on channels
	// with presence (a name, an avatar URL): a JSON object of at most
	// MaxInfoLen bytes, or empty. Hubs show it to the subscribers of those
	// channels, so it must hold nothing they may not see.
	Info json.RawMessage `json:"info,omitempty"`
}

// MaxInfoLen is the largest Claims.Info, in bytes, that Issuer signs and
// Verifier accepts: 1 KiB.
const MaxInfoLen = 1 << 10

// checkInfo returns info compacted (no spaces or newlines), or an error
// when it is not a JSON object of at most MaxInfoLen bytes. An empty info
// is returned as nil.
func checkInfo(info json.RawMessage) (json.RawMessage, error) {
	if len(info) == 0 || string(info) == "null" {
		return nil, nil
	}
	if len(info) > MaxInfoLen {
		return nil, fmt.Errorf("info claim of %d bytes, longer than %d", len(info), MaxInfoLen)
	}
	if !utf8.Valid(info) {
		return nil, errors.New("info claim is not UTF-8")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, info); err != nil {
		return nil, fmt.Errorf("info claim: %w", err)
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, errors.New("info claim is not a JSON object")
	}
	return buf.Bytes(), nil
}

// Allowed reports whether channel matches one of patterns. A pattern
// matches a channel equal to it, or, when it ends in "*", every channel
// that starts with the part before the "*": "shop.Order:*" matches
// "shop.Order:42" but not "shop.Order", and "*" matches every channel. A
// "*" anywhere else is an ordinary character.
//
// A prefix matches whatever follows it: "shop.Order:1*" matches
// "shop.Order:1" and also "shop.Order:10" and "shop.Order:1999", and
// "user:42*" matches "user:420". End a prefix at a separator
// ("user:42:*"), and grant one record by its exact name.
func Allowed(patterns []string, channel string) bool {
	for _, p := range patterns {
		if p == channel {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(channel, prefix) {
			return true
		}
	}
	return false
}
