package testenv

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// SignHS256 builds a JWT from its header and payload as written (bytes
// that are not UTF-8 or not valid JSON stay as they are, which a JSON
// encoder would not allow) and signs it with HMAC-SHA256 and secret, as
// any JWT library would. Tests use it for tokens the project's issuer
// refuses to sign.
func SignHS256(secret []byte, header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(header)) + "." + enc([]byte(payload))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + enc(mac.Sum(nil))
}
