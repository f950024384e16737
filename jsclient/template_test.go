package jsclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/jsclient"
	"github.com/telegraphy-go/telegraphy/tokens"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

type renderedConfig struct {
	URL       string                     `json:"url"`
	Token     string                     `json:"token"`
	TokenURL  string                     `json:"tokenURL"`
	Positions map[string]broker.Position `json:"positions"`
}

var configRE = regexp.MustCompile(`(?s)<script type="application/json" id="telegraphy-config">(.*?)</script>`)

func render(t *testing.T, cfg jsclient.TemplateConfig, page string, data any) string {
	t.Helper()
	tpl := template.Must(template.New("page").Funcs(jsclient.FuncMap(cfg)).Parse(page))
	var b bytes.Buffer
	if err := tpl.Execute(&b, data); err != nil {
		t.Fatalf("execute: %v", err)
	}
	return b.String()
}

func parseConfig(t *testing.T, html string) renderedConfig {
	t.Helper()
	m := configRE.FindAllStringSubmatch(html, -1)
	if len(m) != 1 {
		t.Fatalf("want exactly one config script element, got %d in:\n%s", len(m), html)
	}
	var c renderedConfig
	if err := json.Unmarshal([]byte(m[0][1]), &c); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, m[0][1])
	}
	return c
}

func TestScriptsContent(t *testing.T) {
	ctx := context.Background()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	b := broker.NewMemory()
	defer b.Close(ctx)
	// The memory broker keeps a channel's history from the first time it
	// is asked for it.
	if _, err := b.History(ctx, "shop.Order", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := b.Publish(ctx, broker.Message{Channels: []string{"shop.Order"}, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := b.History(ctx, "shop.Order", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jsclient.TemplateConfig{
		Issuer:   issuer,
		TokenURL: "/telegraphy-token",
		Broker:   b,
		Authorize: func(r *http.Request) (string, []string, error) {
			user := r.URL.Query().Get("user")
			return user, []string{"shop.Order", "user:" + user}, nil
		},
	}
	r := httptest.NewRequest(http.MethodGet, "/orders?user=17", nil)
	html := render(t, cfg, `<head>{{telegraphyScripts .R "shop.Order" .Private}}</head>`,
		map[string]any{"R": r, "Private": []string{"user:17"}})

	if !strings.Contains(html, `<link rel="modulepreload" href="/telegraphy/telegraphy.js">`) {
		t.Errorf("no modulepreload link for /telegraphy/telegraphy.js in:\n%s", html)
	}
	c := parseConfig(t, html)
	if c.URL != "/telegraphy/ws" || c.TokenURL != "/telegraphy-token" {
		t.Errorf("url %q tokenURL %q", c.URL, c.TokenURL)
	}
	claims, err := verifier.Verify(ctx, c.Token)
	if err != nil {
		t.Fatalf("rendered token does not verify: %v", err)
	}
	if claims.Subject != "17" || strings.Join(claims.Channels, ",") != "shop.Order,user:17" {
		t.Errorf("token claims: sub %q channels %v", claims.Subject, claims.Channels)
	}
	if got := c.Positions["shop.Order"]; got != want.Position || got.Offset != 3 {
		t.Errorf("position of shop.Order %+v, want %+v", got, want.Position)
	}
	if got, ok := c.Positions["user:17"]; !ok || got.Epoch == "" || got.Offset != 0 {
		t.Errorf("position of the empty channel user:17 %+v (present %v), want an epoch and offset 0", got, ok)
	}

	// A second render mints a different token: tokens connect once.
	c2 := parseConfig(t, render(t, cfg, `{{telegraphyScripts .}}`, r))
	if c2.Token == "" || c2.Token == c.Token {
		t.Errorf("second render reused or lacked the token")
	}
	if len(c2.Positions) != 0 {
		t.Errorf("positions rendered for no channels: %v", c2.Positions)
	}
}

func TestScriptsEscaping(t *testing.T) {
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	evil := "</script><script>alert(1)</script>&\u2028<!--"
	cfg := jsclient.TemplateConfig{
		Issuer:   issuer,
		Mount:    `/x"><script>alert(2)</script>`,
		TokenURL: "/token?a=1&b=</script>",
		Broker:   broker.NewMemory(),
		Authorize: func(r *http.Request) (string, []string, error) {
			return evil, []string{evil}, nil
		},
	}
	html := render(t, cfg, `{{telegraphyScripts . "`+strings.ReplaceAll(evil, `"`, `\"`)+`"}}`,
		httptest.NewRequest(http.MethodGet, "/", nil))
	if n := strings.Count(html, "<script"); n != 1 {
		t.Errorf("%d <script tags, want 1 (the config):\n%s", n, html)
	}
	if n := strings.Count(html, "</script>"); n != 1 {
		t.Errorf("%d </script> tags, want 1:\n%s", n, html)
	}
	for _, bad := range []string{"<!--", "\u2028", `"><`} {
		if strings.Contains(html, bad) {
			t.Errorf("rendered HTML holds %q unescaped:\n%s", bad, html)
		}
	}
	c := parseConfig(t, html)
	if _, ok := c.Positions[evil]; !ok {
		t.Errorf("channel name did not survive the round trip: %v", c.Positions)
	}
	if c.TokenURL != "/token?a=1&b=</script>" || c.URL != `/x"><script>alert(2)</script>/ws` {
		t.Errorf("endpoints did not survive the round trip: %q %q", c.TokenURL, c.URL)
	}
}

func TestScriptsAnonymousAndErrors(t *testing.T) {
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	anon := jsclient.TemplateConfig{Issuer: issuer, Mount: "/hub/", Authorize: func(*http.Request) (string, []string, error) {
		return "", nil, tokens.ErrUnauthorized
	}}
	html := render(t, anon, `{{telegraphyScripts . "news"}}`, r)
	if c := parseConfig(t, html); c.Token != "" || c.URL != "/hub/ws" {
		t.Errorf("anonymous page: token %q url %q; want no token and /hub/ws", c.Token, c.URL)
	}

	failing := anon
	failing.Authorize = func(*http.Request) (string, []string, error) { return "", nil, errors.New("session store down") }
	tpl := template.Must(template.New("p").Funcs(jsclient.FuncMap(failing)).Parse(`{{telegraphyScripts .}}`))
	if err := tpl.Execute(&bytes.Buffer{}, r); err == nil || !strings.Contains(err.Error(), "session store down") {
		t.Errorf("Authorize error: template error %v", err)
	}
	tpl = template.Must(template.New("p").Funcs(jsclient.FuncMap(anon)).Parse(`{{telegraphyScripts . 42}}`))
	if err := tpl.Execute(&bytes.Buffer{}, r); err == nil {
		t.Error("a channel of type int rendered without error")
	}
	if _, err := jsclient.Scripts(jsclient.TemplateConfig{}, r); err == nil {
		t.Error("Scripts without Issuer and Authorize: no error")
	}
}
