package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestQuickstart runs the example and checks the events it prints.
func TestQuickstart(t *testing.T) {
	var out, log bytes.Buffer
	if err := run(&out, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []struct {
		typ, status string
		pk          float64
	}{
		{"create", "new", 1}, {"create", "new", 2}, {"update", "paid", 1}, {"update", "shipped", 1}, {"delete", "new", 2},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		var e struct {
			Name string `json:"name"`
			Meta struct {
				EventType   string  `json:"event_type"`
				VerboseName string  `json:"verbose_name"`
				PK          float64 `json:"pk"`
			} `json:"meta"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &e); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, lines[i])
		}
		if e.Name != "shop.Order" || e.Meta.EventType != w.typ || e.Meta.PK != w.pk || e.Data["status"] != w.status || e.Meta.VerboseName != "Order" {
			t.Errorf("line %d = %s, want %s of %v with status %s", i, lines[i], w.typ, w.pk, w.status)
		}
		if strings.Contains(lines[i], "s1") || strings.Contains(lines[i], "Secret") {
			t.Errorf("line %d leaks the secret: %s", i, lines[i])
		}
	}
	if strings.Contains(out.String(), "cancelled") || strings.Contains(out.String(), `"pk":3`) {
		t.Errorf("rolled back work was published:\n%s", out.String())
	}
}
