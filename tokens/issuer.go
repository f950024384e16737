package tokens

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest shared secret, in bytes, that NewIssuer and
// NewVerifier accept: 256 bits, the size of an HS256 key.
const MinSecretLen = 32

// DefaultTTL is the lifetime of a token issued with IssuerConfig.TTL zero.
const DefaultTTL = 60 * time.Second

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	// Secret is the shared HS256 secret, at least MinSecretLen bytes. It is
	// copied. Zero value is refused with ErrShortSecret.
	Secret []byte
	// TTL is the lifetime of issued tokens. Zero value means DefaultTTL
	// (60 seconds); a negative value is refused.
	TTL time.Duration
	// Now tells the time. Zero value means time.Now.
	Now func() time.Time
}

// Issuer mints connection tokens: HS256 JWTs with a fresh random jti, iat
// and exp. It is safe for concurrent use.
type Issuer struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewIssuer returns an Issuer configured by cfg, or ErrShortSecret when the
// secret is shorter than MinSecretLen.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w (got %d bytes)", ErrShortSecret, len(cfg.Secret))
	}
	if cfg.TTL < 0 {
		return nil, errors.New("tokens: negative TTL")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Issuer{secret: append([]byte(nil), cfg.Secret...), ttl: cfg.TTL, now: cfg.Now}, nil
}

// TTL returns the lifetime of the tokens the Issuer mints.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue mints a token for subject (which may be empty) that grants the
// channel patterns in channels, valid for the Issuer's TTL.
func (i *Issuer) Issue(subject string, channels []string) (token string, err error) {
	return i.IssueClaims(Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: subject},
		Channels:         channels,
	})
}

// IssueInfo mints a token as Issue does, carrying info: a JSON object of
// at most MaxInfoLen bytes that hubs show to the subscribers of channels
// with presence (see Claims.Info). Empty info means none.
func (i *Issuer) IssueInfo(subject string, channels []string, info json.RawMessage) (string, error) {
	return i.IssueClaims(Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: subject},
		Channels:         channels,
		Info:             info,
	})
}

// IssueClaims mints a token carrying c, filling in what c leaves empty: a
// fresh random jti, iat of now and exp of now plus the TTL. It lets tests
// and applications set their own lifetime or extra registered claims.
func (i *Issuer) IssueClaims(c Claims) (string, error) {
	info, err := checkInfo(c.Info)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadInfo, err)
	}
	c.Info = info
	now := i.now()
	if c.ID == "" {
		id, err := newID()
		if err != nil {
			return "", err
		}
		c.ID = id
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(now)
	}
	if c.ExpiresAt == nil {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(i.ttl))
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &c).SignedString(i.secret)
	if err != nil {
		return "", fmt.Errorf("tokens: sign: %w", err)
	}
	return s, nil
}

// newID returns 128 random bits, base64url-encoded: a jti that never
// repeats in practice.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tokens: random jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
