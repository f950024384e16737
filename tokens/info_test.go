package tokens_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/telegraphy-go/telegraphy/tokens"
)

func TestVerifyInfo(t *testing.T) {
	t.Parallel()
	big := `{"name":"` + strings.Repeat("x", tokens.MaxInfoLen) + `"}`
	tests := []struct {
		name string
		info any // nil: no info claim
		want string
		err  error
	}{
		{name: "none", info: nil, want: ""},
		{name: "object", info: map[string]any{"name": "Ada", "color": "#f00"}, want: `{"color":"#f00","name":"Ada"}`},
		{name: "null", info: json.RawMessage("null"), want: ""},
		{name: "string", info: "Ada", err: tokens.ErrMalformed},
		{name: "array", info: []string{"Ada"}, err: tokens.ErrMalformed},
		{name: "too long", info: json.RawMessage(big), err: tokens.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			claims := goodClaims()
			if tt.info != nil {
				claims = with(claims, "info", tt.info)
			}
			token := sign(t, jwt.SigningMethodHS256, claims, testSecret)
			got, err := newVerifier(t, newClock()).Verify(context.Background(), token)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Verify = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Info) != tt.want {
				t.Fatalf("Info = %s, want %s", got.Info, tt.want)
			}
		})
	}
}

func TestIssueInfo(t *testing.T) {
	t.Parallel()
	clk := newClock()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	token, err := issuer.IssueInfo("17", []string{"doc:*"}, json.RawMessage("{ \"name\" :\n \"Ada\" }"))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := newVerifier(t, clk).Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if string(claims.Info) != `{"name":"Ada"}` || claims.Subject != "17" {
		t.Fatalf("claims = %+v, info %s", claims, claims.Info)
	}
	for _, bad := range []string{`"Ada"`, `{"name":`, `{"n":"` + strings.Repeat("x", tokens.MaxInfoLen) + `"}`} {
		if _, err := issuer.IssueInfo("17", nil, json.RawMessage(bad)); !errors.Is(err, tokens.ErrBadInfo) {
			t.Errorf("IssueInfo(%.20s) = %v, want ErrBadInfo", bad, err)
		}
	}
}

func TestHandlerInfo(t *testing.T) {
	t.Parallel()
	clk := newClock()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := tokens.Handler(tokens.HandlerConfig{
		Issuer:    issuer,
		Authorize: login,
		Info: func(r *http.Request, subject string) (json.RawMessage, error) {
			if subject == "huge" {
				return json.RawMessage(`{"n":"` + strings.Repeat("x", tokens.MaxInfoLen) + `"}`), nil
			}
			return json.Marshal(map[string]string{"name": strings.ToUpper(subject)})
		},
	})
	get := func(user string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/token", nil)
		r.Header.Set("X-User", user)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := get("ada")
	if w.Code != http.StatusOK {
		t.Fatalf("ada: %d %s", w.Code, w.Body)
	}
	claims, err := newVerifier(t, clk).Verify(context.Background(), w.Body.String())
	if err != nil {
		t.Fatal(err)
	}
	if string(claims.Info) != `{"name":"ADA"}` {
		t.Errorf("info %s", claims.Info)
	}
	if w := get("huge"); w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "eyJ") {
		t.Errorf("info over the limit: %d %q, want 500 without a token", w.Code, w.Body)
	}
}
