package tokens

import (
	"strings"

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
