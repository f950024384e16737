package jsclient_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
)

// ShopOrder is the model of the moving-rows test (test/audience.test.mjs):
// each order is in its user's channel "user:<id>".
type ShopOrder struct {
	ID     uint   `json:"id" gorm:"primaryKey"`
	UserID uint   `json:"user_id"`
	Item   string `json:"item"`
}

// orderApp is the app of the moving-rows test, served under /orders/:
// POST /orders/create?user=17&item=x creates an order and answers it,
// POST /orders/move?id=1&user=18 passes it to another user, and GET
// /orders/list?user=17 answers a user's orders (a page's refetch).
func orderApp(t *testing.T, bus broker.Broker) http.Handler {
	db := appDB(t, bus, &ShopOrder{}, events.Options{Name: "shop.Order", ChannelFields: []string{"UserID"},
		Channels: func(m any) []string { return []string{fmt.Sprintf("user:%d", m.(*ShopOrder).UserID)} }})
	num := func(r *http.Request, name string) uint {
		n, _ := strconv.ParseUint(r.URL.Query().Get(name), 10, 32)
		return uint(n)
	}
	answer := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/create", func(w http.ResponseWriter, r *http.Request) {
		o := ShopOrder{UserID: num(r, "user"), Item: r.URL.Query().Get("item")}
		answer(w, o, db.Create(&o).Error)
	})
	mux.HandleFunc("POST /orders/move", func(w http.ResponseWriter, r *http.Request) {
		o := ShopOrder{ID: num(r, "id")}
		answer(w, o, db.Model(&o).Update("user_id", num(r, "user")).Error)
	})
	mux.HandleFunc("GET /orders/list", func(w http.ResponseWriter, r *http.Request) {
		var list []ShopOrder
		answer(w, list, db.Where("user_id = ?", num(r, "user")).Order("id").Find(&list).Error)
	})
	return mux
}
