package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// login stands in for an application's own login: the user is named by
// the X-User header, "banned" may not connect, "broken" fails.
func login(r *http.Request) (string, []string, error) {
	switch user := r.Header.Get("X-User"); user {
	case "":
		return "", nil, tokens.ErrUnauthorized
	case "banned":
		return "", nil, fmt.Errorf("user %s: %w", user, tokens.ErrForbidden)
	case "broken":
		return "", nil, errors.New("session database down")
	default:
		return user, []string{"shop.Order", "user:" + user}, nil
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tokens.Handler(tokens.HandlerConfig{Issuer: issuer, Authorize: login}))
	t.Cleanup(srv.Close)
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		method     string
		user       string
		wantStatus int
	}{
		{"GET by a user", http.MethodGet, "17", http.StatusOK},
		{"POST by a user", http.MethodPost, "42", http.StatusOK},
		{"no login", http.MethodGet, "", http.StatusUnauthorized},
		{"forbidden user", http.MethodPost, "banned", http.StatusForbidden},
		{"Authorize fails", http.MethodGet, "broken", http.StatusInternalServerError},
		{"PUT", http.MethodPut, "17", http.StatusMethodNotAllowed},
		{"DELETE", http.MethodDelete, "17", http.StatusMethodNotAllowed},
		{"HEAD", http.MethodHead, "17", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, srv.URL+"/telegraphy-token", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.user != "" {
				req.Header.Set("X-User", tt.user)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.wantStatus, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, POST" {
				t.Errorf("Allow = %q", resp.Header.Get("Allow"))
			}
			if tt.wantStatus != http.StatusOK {
				if tt.method != http.MethodHead && strings.Count(string(body), ".") == 2 {
					t.Errorf("error response looks like a token: %q", body)
				}
				return
			}
			claims, err := v.Verify(context.Background(), string(body))
			if err != nil {
				t.Fatalf("the served token %q does not verify: %v", body, err)
			}
			if want := []string{"shop.Order", "user:" + tt.user}; claims.Subject != tt.user || !slices.Equal(claims.Channels, want) {
				t.Errorf("claims sub %q channels %q, want %q %q", claims.Subject, claims.Channels, tt.user, want)
			}
		})
	}
}

func TestHandlerServesFreshTokens(t *testing.T) {
	t.Parallel()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tokens.Handler(tokens.HandlerConfig{Issuer: issuer, Authorize: login}))
	t.Cleanup(srv.Close)
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	// A reconnecting client fetches a token per connection; each must work.
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("X-User", "17")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if _, err := v.Verify(context.Background(), string(body)); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
}

func TestHandlerNeedsIssuerAndAuthorize(t *testing.T) {
	t.Parallel()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]tokens.HandlerConfig{
		"no Issuer":    {Authorize: login},
		"no Authorize": {Issuer: issuer},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Handler did not panic", name)
				}
			}()
			tokens.Handler(cfg)
		}()
	}
}
