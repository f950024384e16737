package hub_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
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
