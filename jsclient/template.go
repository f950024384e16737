package jsclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// ConfigElementID is the id of the script element holding the client's
// configuration; fromPage() in telegraphy.js reads it.
const ConfigElementID = "telegraphy-config"

// TemplateConfig configures the template helper.
type TemplateConfig struct {
	// Issuer mints the token rendered into the page. Required.
	Issuer *tokens.Issuer
	// Authorize returns the request's user and the channel patterns it may
	// subscribe to, as for tokens.HandlerConfig. An error wrapping
	// tokens.ErrUnauthorized renders the page without a token (the client
	// says an anonymous hello); any other error fails the template. Required.
	Authorize func(r *http.Request) (subject string, channels []string, err error)
	// Mount is the path the hub is mounted at. Zero value means
	// "/telegraphy": the script is <Mount>/telegraphy.js and the WebSocket
	// endpoint <Mount>/ws, relative to the page's origin.
	Mount string
	// URL is the WebSocket endpoint when the hub is on another origin, e.g.
	// "wss://hub.example.com/ws". Zero value means <Mount>/ws on the page's
	// origin.
	URL string
	// TokenURL is the token endpoint (tokens.Handler) the client asks for a
	// fresh token on each reconnection, e.g. "/telegraphy-token". Zero value
	// means reconnections say an anonymous hello.
	TokenURL string
	// Broker gives the current position of each channel the page
	// subscribes to, so the client receives every event committed after the
	// page was rendered. Zero value renders no positions: the client then
	// starts from the moment it subscribes.
	Broker broker.Broker
}

// pageConfig is the JSON read by fromPage() in telegraphy.js.
type pageConfig struct {
	URL       string                     `json:"url"`
	Token     string                     `json:"token,omitempty"`
	TokenURL  string                     `json:"tokenURL,omitempty"`
	Positions map[string]broker.Position `json:"positions,omitempty"`
}

// FuncMap returns the template function "telegraphyScripts", which
// renders the tags a page needs to connect:
//
//	{{telegraphyScripts .Request "shop.Order" (printf "user:%s" .User)}}
//
// It takes the request and the channels the page subscribes to (strings or
// []string), and renders a JSON script element with the client's
// configuration (a fresh token, the endpoints, each channel's current
// position) and a modulepreload link for telegraphy.js. The page's own
// module then calls fromPage() and subscribes. See Scripts.
func FuncMap(cfg TemplateConfig) template.FuncMap {
	return template.FuncMap{
		"telegraphyScripts": func(r *http.Request, channels ...any) (template.HTML, error) {
			var names []string
			for _, c := range channels {
				switch c := c.(type) {
				case string:
					names = append(names, c)
				case []string:
					names = append(names, c...)
				default:
					return "", fmt.Errorf("jsclient: telegraphyScripts: channel of type %T, want string or []string", c)
				}
			}
			return Scripts(cfg, r, names...)
		},
	}
}

// Scripts renders what telegraphyScripts renders, for pages built without
// html/template. Every value is JSON-encoded with <, > and & escaped, so
// nothing in a channel name or token can close the script element.
func Scripts(cfg TemplateConfig, r *http.Request, channels ...string) (template.HTML, error) {
	if cfg.Issuer == nil || cfg.Authorize == nil {
		return "", errors.New("jsclient: TemplateConfig needs an Issuer and an Authorize function")
	}
	mount := strings.TrimSuffix(cfg.Mount, "/")
	if cfg.Mount == "" {
		mount = "/telegraphy"
	}
	pc := pageConfig{URL: cfg.URL, TokenURL: cfg.TokenURL}
	if pc.URL == "" {
		pc.URL = mount + "/ws"
	}
	subject, grants, err := cfg.Authorize(r)
	switch {
	case errors.Is(err, tokens.ErrUnauthorized):
	case err != nil:
		return "", fmt.Errorf("jsclient: authorize: %w", err)
	default:
		if pc.Token, err = cfg.Issuer.Issue(subject, grants); err != nil {
			return "", fmt.Errorf("jsclient: issue token: %w", err)
		}
	}
	if cfg.Broker != nil && len(channels) > 0 {
		pc.Positions = make(map[string]broker.Position, len(channels))
		for _, ch := range channels {
			h, err := cfg.Broker.History(r.Context(), ch, nil)
			if err != nil {
				return "", fmt.Errorf("jsclient: position of %q: %w", ch, err)
			}
			pc.Positions[ch] = h.Position
		}
	}
	js, err := json.Marshal(pc) // escapes <, >, &, U+2028 and U+2029
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(`<script type="application/json" id="` + ConfigElementID + `">`)
	b.Write(js)
	b.WriteString("</script>\n<link rel=\"modulepreload\" href=\"")
	b.WriteString(template.HTMLEscapeString(mount + "/telegraphy.js"))
	b.WriteString("\">\n")
	return template.HTML(b.String()), nil
}
