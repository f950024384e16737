package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/telegraphy-go/telegraphy/tokens"
)

func init() {
	commands["token"] = command{
		summary: "mint a connection token for testing",
		run:     runToken,
	}
}

// runToken prints a token signed with the secret from --secret-file or
// TELEGRAPHY_SECRET.
func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("telegraphy token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the token's subject (user ID); may be empty")
	channels := fs.String("channels", "", "comma-separated channel patterns, e.g. 'shop.Order,shop.Order:*'")
	ttl := fs.Duration("ttl", tokens.DefaultTTL, "lifetime of the token (hubs refuse more than 1h by default)")
	secretFile := fs.String("secret-file", "", "file holding the shared secret (default: $TELEGRAPHY_SECRET)")
	setUsage(fs, stderr, "telegraphy token [--sub ID] [--channels PATTERNS] [--ttl 60s] [--secret-file F]", `
Prints a single-use connection token signed with the shared secret,
read from --secret-file or the TELEGRAPHY_SECRET environment variable.`, nil)
	if ok, err := parseArgs(fs, args); !ok {
		return err
	}
	if *ttl <= 0 {
		return fmt.Errorf("--ttl must be positive, got %s", *ttl)
	}
	if *ttl > tokens.DefaultMaxLifetime {
		fmt.Fprintf(stderr, "telegraphy token: warning: --ttl %s is longer than hubs accept by default (%s); "+
			"they refuse this token (\"token refused: lifetime\")\n", *ttl, tokens.DefaultMaxLifetime)
	}
	secret, err := secretFromFileOrEnv(*secretFile)
	if err != nil {
		return err
	}
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: secret, TTL: *ttl})
	if err != nil {
		return err
	}
	token, err := issuer.Issue(*sub, splitCommaList(*channels))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// secretFromFileOrEnv returns the shared secret from file, or from
// TELEGRAPHY_SECRET when file is empty, refusing one shorter than
// tokens.MinSecretLen. A secret file's trailing newline is not part of the
// secret.
func secretFromFileOrEnv(file string) ([]byte, error) {
	var secret []byte
	source := "TELEGRAPHY_SECRET"
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read secret: %w", err)
		}
		secret = bytes.TrimRight(b, "\r\n")
		source = file
	} else {
		secret = []byte(os.Getenv("TELEGRAPHY_SECRET"))
	}
	if len(secret) == 0 {
		if file != "" {
			return nil, fmt.Errorf("secret file %s is empty", file)
		}
		return nil, errors.New("no secret: set TELEGRAPHY_SECRET or pass --secret-file")
	}
	if len(secret) < tokens.MinSecretLen {
		return nil, fmt.Errorf("secret from %s is %d bytes; it must be at least %d (e.g. openssl rand -hex 32)",
			source, len(secret), tokens.MinSecretLen)
	}
	return secret, nil
}

// splitCommaList splits a comma-separated flag value, dropping blanks.
func splitCommaList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
