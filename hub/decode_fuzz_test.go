package hub

import (
	"encoding/json"
	"testing"
)

// FuzzDecode feeds arbitrary client frames to the decoder: it must never
// panic, and whatever it accepts must be a request the hub can act on.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","token":"a.b.c"}`,
		`{"type":"hello"}`,
		`{"type":"subscribe","id":1,"channel":"shop.Order","since":{"epoch":"e1","offset":41}}`,
		`{"type":"unsubscribe","id":2,"channel":"shop.Order"}`,
		`{"type":"ping","id":3}`,
		"{\"type\":\"ping\",\"id\":1}\n{\"type\":\"ping\",\"id\":2}",
		`{"type":"publish","id":4,"channel":"x"}`,
		`{"type":"subscribe","id":-1,"channel":"x"}`,
		`{"type":"subscribe","id":1.5,"channel":"x"}`,
		`{"type":"subscribe","id":1,"channel":"x","since":"s"}`,
		`[1,2,3]`,
		`null`,
		`{"type":`,
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		eachLine(frame, func(line []byte) bool {
			r, perr := decodeRequest(line)
			if perr != nil {
				if perr.code != codeBadRequest || perr.message == "" {
					t.Fatalf("%q: error %+v", line, perr)
				}
				if _, err := json.Marshal(errorMsg{Type: typeError, ID: perr.id, Code: perr.code, Message: perr.message}); err != nil {
					t.Fatalf("%q: error reply does not encode: %v", line, err)
				}
				return true
			}
			switch r.Type {
			case typeHello, typePing:
				if r.Type == typePing && r.ID == nil {
					t.Fatalf("%q: ping accepted without id", line)
				}
			case typeSubscribe, typeUnsubscribe:
				if r.ID == nil {
					t.Fatalf("%q: %s accepted without id", line, r.Type)
				}
				_ = checkChannel(r.Channel)
			default:
				t.Fatalf("%q: type %q accepted", line, r.Type)
			}
			return true
		})
	})
}
