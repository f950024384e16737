package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/tokens"
)

const tokenTestSecret = "0123456789abcdef0123456789abcdef"

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	fileSecret := "a secret read from a file, 32+ bytes"
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shortFile := filepath.Join(dir, "short")
	if err := os.WriteFile(shortFile, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		env          string // TELEGRAPHY_SECRET
		args         []string
		wantCode     int
		verifyWith   string // the secret the printed token must verify with
		wantSub      string
		wantChannels []string
		wantTTL      time.Duration
		wantStderr   string
		wantRefusal  error // what a verifier with the defaults says of the token
	}{
		{name: "secret from the environment", env: tokenTestSecret,
			args:     []string{"--sub", "17", "--channels", "shop.Order,shop.Order:*", "--ttl", "30s"},
			wantCode: 0, verifyWith: tokenTestSecret, wantSub: "17",
			wantChannels: []string{"shop.Order", "shop.Order:*"}, wantTTL: 30 * time.Second},
		{name: "defaults", env: tokenTestSecret,
			wantCode: 0, verifyWith: tokenTestSecret, wantTTL: tokens.DefaultTTL},
		{name: "secret file wins over the environment", env: tokenTestSecret,
			args:     []string{"--secret-file", secretFile, "--channels", " user:17 , ,shop.*"},
			wantCode: 0, verifyWith: fileSecret,
			wantChannels: []string{"user:17", "shop.*"}, wantTTL: tokens.DefaultTTL},
		{name: "short secret in the environment", env: "short",
			wantCode: 1, wantStderr: "secret from TELEGRAPHY_SECRET is 5 bytes; it must be at least 32"},
		{name: "short secret file", env: tokenTestSecret, args: []string{"--secret-file", shortFile},
			wantCode: 1, wantStderr: "is 9 bytes; it must be at least 32"},
		{name: "no secret",
			wantCode: 1, wantStderr: "no secret: set TELEGRAPHY_SECRET or pass --secret-file"},
		{name: "missing secret file", args: []string{"--secret-file", filepath.Join(dir, "nope")},
			wantCode: 1, wantStderr: "read secret:"},
		{name: "ttl over what hubs accept", env: tokenTestSecret, args: []string{"--ttl", "2h"},
			wantCode: 0, verifyWith: tokenTestSecret, wantRefusal: tokens.ErrLifetime,
			wantStderr: "telegraphy token: warning: --ttl 2h0m0s is longer than hubs accept by default (1h0m0s); they refuse this token"},
		{name: "negative ttl", env: tokenTestSecret, args: []string{"--ttl", "-1s"},
			wantCode: 1, wantStderr: "--ttl must be positive"},
		{name: "bad ttl", env: tokenTestSecret, args: []string{"--ttl", "soon"},
			wantCode: 1, wantStderr: "invalid value \"soon\" for flag -ttl"},
		{name: "stray argument", env: tokenTestSecret, args: []string{"17"},
			wantCode: 1, wantStderr: "unexpected argument \"17\""},
		{name: "help", args: []string{"-h"},
			wantCode: 0, wantStderr: "usage: telegraphy token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TELEGRAPHY_SECRET", tt.env)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"token"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr %q", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
			if tt.verifyWith == "" {
				if stdout.Len() != 0 {
					t.Errorf("stdout %q, want nothing", stdout.String())
				}
				return
			}
			out := stdout.String()
			if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
				t.Errorf("stdout %q, want one line", out)
			}
			v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: []byte(tt.verifyWith)})
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Verify(context.Background(), strings.TrimSpace(out))
			if tt.wantRefusal != nil {
				if !errors.Is(err, tt.wantRefusal) {
					t.Errorf("printed token: %v, want %v", err, tt.wantRefusal)
				}
				return
			}
			if err != nil {
				t.Fatalf("printed token does not verify: %v", err)
			}
			if claims.Subject != tt.wantSub || !slices.Equal(claims.Channels, tt.wantChannels) {
				t.Errorf("sub %q channels %q, want %q %q", claims.Subject, claims.Channels, tt.wantSub, tt.wantChannels)
			}
			if ttl := claims.ExpiresAt.Sub(claims.IssuedAt.Time); ttl != tt.wantTTL {
				t.Errorf("lifetime %s, want %s", ttl, tt.wantTTL)
			}
		})
	}
}
