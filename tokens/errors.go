package tokens

import "errors"

// Errors returned by NewIssuer, NewVerifier, Verify and the stores. Verify
// wraps them with %w and a reason a person can read; test for them with
// errors.Is, and use Reason for a short label fit for metrics.
var (
	// ErrShortSecret means the shared secret is shorter than MinSecretLen.
	ErrShortSecret = errors.New("tokens: secret shorter than 32 bytes")
	// ErrMalformed means the token is not a well-formed JWT: wrong number of
	// segments, bad base64 or JSON, a claim of the wrong type, or longer
	// than MaxTokenLen.
	ErrMalformed = errors.New("tokens: malformed token")
	// ErrSignature means the signature does not match the secret.
	ErrSignature = errors.New("tokens: invalid signature")
	// ErrAlgorithm means the header names an algorithm other than HS256,
	// including "none".
	ErrAlgorithm = errors.New("tokens: algorithm not allowed")
	// ErrExpired means the token's exp has passed, beyond the leeway.
	ErrExpired = errors.New("tokens: token expired")
	// ErrNotYetValid means the token's nbf or iat lies in the future,
	// beyond the leeway.
	ErrNotYetValid = errors.New("tokens: token not valid yet")
	// ErrLifetime means the token's exp lies further in the future than the
	// verifier's MaxLifetime allows.
	ErrLifetime = errors.New("tokens: token lifetime too long")
	// ErrMissingClaim means a required claim (exp or jti) is absent.
	ErrMissingClaim = errors.New("tokens: missing required claim")
	// ErrReplayed means the token's jti was already used: each token
	// connects once.
	ErrReplayed = errors.New("tokens: token already used")
	// ErrStore means the ReplayStore failed, so the token could not be
	// checked for reuse and was refused.
	ErrStore = errors.New("tokens: replay store failed")
	// ErrStoreFull is returned by MemoryStore.Use when it holds MaxEntries
	// unexpired entries; it refuses rather than grows.
	ErrStoreFull = errors.New("tokens: replay store full")
	// ErrBadInfo is returned by Issuer for a Claims.Info that is not a
	// JSON object of at most MaxInfoLen bytes.
	ErrBadInfo = errors.New("tokens: bad info claim")
	// ErrUnauthorized, returned by HandlerConfig.Authorize, makes Handler
	// answer 401: the request carries no logged-in user.
	ErrUnauthorized = errors.New("tokens: unauthorized")
	// ErrForbidden, returned by HandlerConfig.Authorize, makes Handler
	// answer 403: the user is known but may not connect.
	ErrForbidden = errors.New("tokens: forbidden")
)

// Reason returns a short machine-readable label for an error from Verify,
// for metrics and logs: "malformed", "signature", "algorithm", "expired",
// "not_yet_valid", "lifetime", "missing_claim", "replayed" or "store". It
// returns "" for nil and "other" for an error Verify does not produce.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrSignature):
		return "signature"
	case errors.Is(err, ErrAlgorithm):
		return "algorithm"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, ErrLifetime):
		return "lifetime"
	case errors.Is(err, ErrMissingClaim):
		return "missing_claim"
	case errors.Is(err, ErrReplayed):
		return "replayed"
	case errors.Is(err, ErrStore), errors.Is(err, ErrStoreFull):
		return "store"
	default:
		return "other"
	}
}
