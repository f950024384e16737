package wsframe_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/internal/wsframe"
)

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		size int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{0xffff, []byte{0x81, 126, 0xff, 0xff}},
		{0x10000, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		got := wsframe.AppendHeader([]byte{}, wsframe.OpText, tc.size)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("size %d: % x, want % x", tc.size, got, tc.want)
		}
		h, err := wsframe.ParseHeader(got)
		if err != nil || !h.Fin || h.Op != wsframe.OpText || h.Masked || h.Size != uint64(tc.size) || h.Len != len(got) {
			t.Errorf("size %d: parsed %+v, %v", tc.size, h, err)
		}
		for i := range got {
			if _, err := wsframe.ParseHeader(got[:i]); !errors.Is(err, wsframe.ErrShort) {
				t.Errorf("size %d, %d of %d header bytes: %v, want ErrShort", tc.size, i, len(got), err)
			}
		}
	}
}

func TestAppendMasked(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	frame := wsframe.AppendMasked(nil, wsframe.OpPong, key, []byte("hello"))
	h, err := wsframe.ParseHeader(frame)
	if err != nil || !h.Masked || h.Key != key || h.Op != wsframe.OpPong || h.Size != 5 || h.Len != 6 {
		t.Fatalf("parsed %+v, %v", h, err)
	}
	for i := range frame[:h.Len] {
		if _, err := wsframe.ParseHeader(frame[:i]); !errors.Is(err, wsframe.ErrShort) {
			t.Errorf("%d header bytes: %v, want ErrShort", i, err)
		}
	}
	payload := frame[h.Len:]
	wsframe.Unmask(h.Key, 0, payload)
	if string(payload) != "hello" {
		t.Fatalf("payload %q", payload)
	}
}

func TestParseHeaderRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"reserved bit":        {[]byte{0xc1, 0}, wsframe.ErrReserved},
		"reserved opcode":     {[]byte{0x83, 0}, wsframe.ErrReserved},
		"reserved control":    {[]byte{0x8b, 0}, wsframe.ErrReserved},
		"16-bit length < 126": {[]byte{0x81, 126, 0, 125}, wsframe.ErrLength},
		"64-bit length small": {[]byte{0x81, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, wsframe.ErrLength},
		"64-bit top bit":      {[]byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, wsframe.ErrLength},
		"long control":        {[]byte{0x88, 126, 0, 126}, wsframe.ErrLength},
		"fragmented control":  {[]byte{0x09, 0}, wsframe.ErrLength},
	} {
		if _, err := wsframe.ParseHeader(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// pair returns both ends of a WebSocket connection over loopback TCP.
func pair(t testing.TB) (server, client *websocket.Conn) {
	t.Helper()
	conns := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			close(conns)
			return
		}
		conns <- ws
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	server = <-conns
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for _, ws := range []*websocket.Conn{client, server} {
		_ = ws.NetConn().SetDeadline(deadline)
	}
	return server, client
}

// readFrame reads one whole frame from r with the codec and returns its
// header and unmasked payload.
func readFrame(t testing.TB, r io.Reader) (wsframe.Header, []byte) {
	t.Helper()
	buf := make([]byte, 0, wsframe.MaxHeaderLen)
	for {
		h, err := wsframe.ParseHeader(buf)
		if errors.Is(err, wsframe.ErrShort) {
			var b [1]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				t.Fatal(err)
			}
			buf = append(buf, b[0])
			continue
		}
		if err != nil {
			t.Fatalf("header % x: %v", buf, err)
		}
		if h.Len != len(buf) {
			t.Fatalf("header % x parsed as %d bytes", buf, h.Len)
		}
		payload := make([]byte, h.Size)
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		if h.Masked {
			wsframe.Unmask(h.Key, 0, payload)
		}
		return h, payload
	}
}

// closeCodes are codes a close frame may carry.
var closeCodes = []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4001, 4008, 4999}

// FuzzAgainstGorilla checks the codec against gorilla/websocket both
// ways: frames the codec writes (a server's unmasked ones and a client's
// masked ones) read back with gorilla as sent, and frames gorilla writes
// parse with the codec as sent.
func FuzzAgainstGorilla(f *testing.F) {
	f.Add([]byte("hello"), uint8(0))
	f.Add(bytes.Repeat([]byte{'x'}, 126), uint8(1))
	f.Add(bytes.Repeat([]byte{'y'}, 70000), uint8(0))
	f.Add([]byte("bye"), uint8(2))
	f.Add([]byte{}, uint8(3))
	f.Fuzz(func(t *testing.T, payload []byte, kind uint8) {
		kind %= 4
		op := []byte{wsframe.OpText, wsframe.OpBinary, wsframe.OpClose, wsframe.OpPing}[kind]
		if op == wsframe.OpClose {
			// A close frame carries a code and a UTF-8 reason.
			reason := []byte(strings.ToValidUTF8(string(payload), ""))
			reason = reason[:min(len(reason), wsframe.MaxControlPayload-2)]
			for !utf8.Valid(reason) {
				reason = reason[:len(reason)-1]
			}
			code := closeCodes[len(payload)%len(closeCodes)]
			payload = binary.BigEndian.AppendUint16(nil, uint16(code))
			payload = append(payload, reason...)
		}
		if op == wsframe.OpPing && len(payload) > wsframe.MaxControlPayload {
			payload = payload[:wsframe.MaxControlPayload]
		}
		server, client := pair(t)
		gorillaType := map[byte]int{wsframe.OpText: websocket.TextMessage, wsframe.OpBinary: websocket.BinaryMessage,
			wsframe.OpClose: websocket.CloseMessage, wsframe.OpPing: websocket.PingMessage}[op]

		// The codec writes as a server; gorilla reads as a client.
		frame := append(wsframe.AppendHeader(nil, op, len(payload)), payload...)
		if op == wsframe.OpPing {
			// gorilla hands a ping to its handler and reads on: a text
			// frame after it ends ReadMessage.
			frame = append(wsframe.AppendHeader(frame, wsframe.OpText, 5), "after"...)
		}
		if _, err := server.NetConn().Write(frame); err != nil {
			t.Fatal(err)
		}
		expectGorilla(t, client, op, payload)

		// The codec writes as a client; gorilla reads as a server.
		key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
		frame = wsframe.AppendMasked(nil, op, key, payload)
		if op == wsframe.OpPing {
			frame = wsframe.AppendMasked(frame, wsframe.OpText, key, []byte("after"))
		}
		if _, err := client.NetConn().Write(frame); err != nil {
			t.Fatal(err)
		}
		expectGorilla(t, server, op, payload)

		// gorilla writes as a server and as a client; the codec parses.
		for _, w := range []struct {
			from   *websocket.Conn
			to     net.Conn
			masked bool
		}{{server, client.NetConn(), false}, {client, server.NetConn(), true}} {
			var err error
			if op == wsframe.OpClose || op == wsframe.OpPing {
				err = w.from.WriteControl(gorillaType, payload, time.Now().Add(5*time.Second))
			} else {
				err = w.from.WriteMessage(gorillaType, payload)
			}
			if err != nil {
				t.Fatal(err)
			}
			h, got := readFrame(t, w.to)
			for first := h; !h.Fin; {
				// gorilla writes a long message in several frames.
				var more []byte
				h, more = readFrame(t, w.to)
				if h.Op != wsframe.OpContinuation || h.Masked != first.Masked {
					t.Fatalf("after a frame %+v: %+v, want a continuation", first, h)
				}
				got = append(got, more...)
				h.Op = first.Op
			}
			if !h.Fin || h.Op != op || h.Masked != w.masked || !bytes.Equal(got, payload) {
				t.Fatalf("gorilla wrote op %d, %d bytes, masked %v; parsed %+v with %d bytes", op, len(payload), w.masked, h, len(got))
			}
		}
	})
}

// expectGorilla reads one message with gorilla and checks it is a frame
// of opcode op carrying payload (for a ping: that its handler saw payload,
// then the text frame "after").
func expectGorilla(t *testing.T, ws *websocket.Conn, op byte, payload []byte) {
	t.Helper()
	var pinged []byte
	ws.SetPingHandler(func(data string) error {
		pinged = []byte(data)
		return nil
	})
	ws.SetCloseHandler(func(int, string) error { return nil })
	mt, got, err := ws.ReadMessage()
	switch op {
	case wsframe.OpClose:
		var ce *websocket.CloseError
		code := int(binary.BigEndian.Uint16(payload))
		if !errors.As(err, &ce) || ce.Code != code || ce.Text != string(payload[2:]) {
			t.Fatalf("gorilla read %v, want close %d %q", err, code, payload[2:])
		}
	case wsframe.OpPing:
		if err != nil || mt != websocket.TextMessage || string(got) != "after" || !bytes.Equal(pinged, payload) {
			t.Fatalf("gorilla read %d %q %v after a ping of %q; want the ping's payload and \"after\"", mt, got, err, pinged)
		}
	default:
		if err != nil {
			t.Fatal(err)
		}
		want := map[byte]int{wsframe.OpText: websocket.TextMessage, wsframe.OpBinary: websocket.BinaryMessage}[op]
		if mt != want || !bytes.Equal(got, payload) {
			t.Fatalf("gorilla read type %d, %d bytes; want op %d, %d bytes", mt, len(got), op, len(payload))
		}
	}
}

// FuzzParseHeader: any bytes parse without a panic, to a header no longer
// than the bytes given, or to an error.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x05})
	f.Add([]byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := wsframe.ParseHeader(b)
		if err == nil && (h.Len > len(b) || h.Len < 2 || h.Len > wsframe.MaxHeaderLen) {
			t.Fatalf("% x parsed as a header of %d bytes", b, h.Len)
		}
	})
}
