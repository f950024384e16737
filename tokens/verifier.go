package tokens

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLen is the longest token, in bytes, that Verify reads; a longer
// one is refused with ErrMalformed before it is decoded.
const MaxTokenLen = 8 << 10

// DefaultLeeway is the clock skew allowed when VerifierConfig.Leeway is zero.
const DefaultLeeway = 5 * time.Second

// DefaultMaxLifetime is the furthest in the future a token's exp may lie
// when VerifierConfig.MaxLifetime is zero.
const DefaultMaxLifetime = time.Hour

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Secret is the shared HS256 secret, at least MinSecretLen bytes. It is
	// copied. Zero value is refused with ErrShortSecret.
	Secret []byte
	// Store remembers used token IDs. Zero value means a new MemoryStore on
	// the Verifier's clock, which serves one process; hubs behind a load
	// balancer share the Redis broker's store instead.
	Store ReplayStore
	// Leeway is the clock skew allowed between the minting app and the
	// hub when checking exp, nbf and iat. Zero value means DefaultLeeway
	// (5 seconds); a negative value means none.
	Leeway time.Duration
	// MaxLifetime refuses, with ErrLifetime, a token whose exp is more than
	// this far in the future: tokens are short-lived by design, and the
	// store must remember each jti until its exp. Zero value means
	// DefaultMaxLifetime (1 hour); a negative value means no limit.
	MaxLifetime time.Duration
	// Now tells the time. Zero value means time.Now.
	Now func() time.Time
}

// Verifier checks connection tokens and marks each one used. It is safe for
// concurrent use.
type Verifier struct {
	secret      []byte
	store       ReplayStore
	leeway      time.Duration
	maxLifetime time.Duration
	now         func() time.Time
	parser      *jwt.Parser
}

// NewVerifier returns a Verifier configured by cfg, or ErrShortSecret when
// the secret is shorter than MinSecretLen.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w (got %d bytes)", ErrShortSecret, len(cfg.Secret))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway < 0 {
		cfg.Leeway = 0
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore(MemoryStoreConfig{Now: cfg.Now})
	}
	return &Verifier{
		secret:      append([]byte(nil), cfg.Secret...),
		store:       cfg.Store,
		leeway:      cfg.Leeway,
		maxLifetime: cfg.MaxLifetime,
		now:         cfg.Now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithStrictDecoding(),
		),
	}, nil
}

// Verify checks token and, when it is good, marks it used and returns its
// claims. It refuses, with an error wrapping one of the package's
// sentinels: a token longer than MaxTokenLen or not a JWT, or whose info
// claim is not a JSON object of at most MaxInfoLen bytes (ErrMalformed),
// any algorithm but HS256 (ErrAlgorithm), a bad signature (ErrSignature), a
// missing exp or jti (ErrMissingClaim), an exp past by more than the leeway
// (ErrExpired), an nbf or iat ahead by more than the leeway
// (ErrNotYetValid), an exp beyond MaxLifetime (ErrLifetime), a jti already
// used (ErrReplayed), and a store failure (ErrStore).
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLen)
	}
	claims := &Claims{}
	parsed, err := v.parser.ParseWithClaims(token, claims, v.key)
	if err != nil {
		return nil, v.classify(parsed, err)
	}
	if claims.ID == "" {
		return nil, fmt.Errorf("%w: jti", ErrMissingClaim)
	}
	if claims.Info, err = checkInfo(claims.Info); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	exp := claims.ExpiresAt.Time
	now := v.now()
	if v.maxLifetime > 0 && exp.Sub(now) > v.maxLifetime+v.leeway {
		return nil, fmt.Errorf("%w: expires in %s, limit %s", ErrLifetime, exp.Sub(now).Round(time.Second), v.maxLifetime)
	}
	// The token is accepted until exp plus the leeway, so it must stay
	// marked as long.
	fresh, err := v.store.Use(ctx, claims.ID, exp.Add(v.leeway))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if !fresh {
		return nil, fmt.Errorf("%w: jti %q", ErrReplayed, claims.ID)
	}
	return claims, nil
}

// key hands the parser the secret, and only for HS256; the parser has
// already refused other algorithms, so this is a second lock on the door.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, fmt.Errorf("%w: %v", ErrAlgorithm, t.Header["alg"])
	}
	return v.secret, nil
}

// classify maps an error of the jwt parser to the package's sentinels.
func (v *Verifier) classify(t *jwt.Token, err error) error {
	if t != nil && t.Header != nil {
		if alg, _ := t.Header["alg"].(string); alg != jwt.SigningMethodHS256.Alg() {
			return fmt.Errorf("%w: %q", ErrAlgorithm, t.Header["alg"])
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: %v", ErrSignature, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: exp", ErrMissingClaim)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %v", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: %v", ErrNotYetValid, err)
	default:
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
}
