package hub_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// A hub mounted in an application's mux, fed by the in-process broker.
func ExampleNew() {
	bus := broker.NewMemory()
	h, err := hub.New(hub.Config{
		Broker:         bus,
		Secret:         []byte(os.Getenv("TELEGRAPHY_SECRET")), // at least 32 bytes
		AllowedOrigins: []string{"https://app.example.com"},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/telegraphy/", http.StripPrefix("/telegraphy", h))
	srv := &http.Server{Addr: ":8080", Handler: mux}
	go func() { _ = srv.ListenAndServe() }()

	// On shutdown: clients get 1001 and reconnect elsewhere.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.Close(ctx)
	_ = srv.Shutdown(ctx)
	_ = bus.Close(ctx)
}

// What a client sees: a hello with a token, a subscription, and an event
// published to the broker after it. Browsers use telegraphy.js, which
// speaks this protocol.
func Example_protocol() {
	secret := []byte("an example secret of 32+ bytes..")
	bus := broker.NewMemory()
	h, err := hub.New(hub.Config{Broker: bus, Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/telegraphy", h))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer bus.Close(ctx)
	defer srv.Close()
	defer h.Close(ctx)

	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	token, err := issuer.Issue("17", []string{"shop.Order"})
	if err != nil {
		log.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/telegraphy/ws", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Close()
	// The session ID and the channel's epoch are random: shown as "…".
	random := regexp.MustCompile(`"(session|epoch)":"[^"]*"`)
	read := func() string {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			log.Fatal(err)
		}
		return random.ReplaceAllString(string(msg), `"$1":"…"`)
	}

	_ = ws.WriteJSON(map[string]any{"type": "hello", "token": token})
	fmt.Println(read())
	_ = ws.WriteJSON(map[string]any{"type": "subscribe", "id": 1, "channel": "shop.Order"})
	fmt.Println(read())
	err = bus.Publish(ctx, broker.Message{
		EventID:  "0193b8a2-5c1e-7c3a-9f1e-2b4d6e8fa001",
		Channels: []string{"shop.Order"},
		Data:     []byte(`{"name":"shop.Order","meta":{"event_type":"create","timestamp":"2026-11-25T17:37:03.123456Z","id":"0193b8a2-5c1e-7c3a-9f1e-2b4d6e8fa001","pk":42},"data":{"id":42}}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(read())
	_ = ws.WriteJSON(map[string]any{"type": "subscribe", "id": 2, "channel": "user:18"})
	fmt.Println(read())
	// Output:
	// {"type":"welcome","session":"…","subject":"17"}
	// {"type":"subscribed","id":1,"channel":"shop.Order","epoch":"…","offset":0,"recovered":true}
	// {"type":"event","channel":"shop.Order","offset":1,"event":{"name":"shop.Order","meta":{"event_type":"create","timestamp":"2026-11-25T17:37:03.123456Z","id":"0193b8a2-5c1e-7c3a-9f1e-2b4d6e8fa001","pk":42},"data":{"id":42}}}
	// {"type":"error","id":2,"code":"forbidden","message":"channel not allowed by your token"}
}
