package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/telegraphy-go/telegraphy/broker"
)

// Message types of the WebSocket protocol (docs/protocol.md).
const (
	typeHello        = "hello"
	typeSubscribe    = "subscribe"
	typeUnsubscribe  = "unsubscribe"
	typePing         = "ping"
	typeWelcome      = "welcome"
	typeSubscribed   = "subscribed"
	typeUnsubscribed = "unsubscribed"
	typePong         = "pong"
	typeEvent        = "event"
	typeError        = "error"
)

// Error codes carried by error messages.
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeNotFound     = "not_found"
	codeLimit        = "limit"
	codeInternal     = "internal"
)

// Close codes the hub sends.
const (
	closeGoingAway    = 1001
	closeInvalidData  = 1007
	closePolicy       = 1008
	closeTooBig       = 1009
	closeUnauthorized = 4001
	closeSlowConsumer = 4008
	closeRevoked      = 4010
)

// request is one decoded client message.
type request struct {
	Type    string
	ID      *uint64
	Token   string
	Channel string
	Since   *broker.Position
	// Presence asks, in subscribe, for join and leave notices.
	Presence bool
}

// wireRequest is the JSON shape of every client message; fields that a
// type does not use are ignored.
type wireRequest struct {
	Type     *string          `json:"type"`
	ID       *uint64          `json:"id"`
	Token    *string          `json:"token"`
	Channel  *string          `json:"channel"`
	Since    *broker.Position `json:"since"`
	Presence *bool            `json:"presence"`
}

// protoError is a request the hub answers with an error message.
type protoError struct {
	id      *uint64
	code    string
	message string
}

// decodeRequest decodes one line of a client frame and checks that the
// fields its type needs are present. It never panics, whatever line holds.
func decodeRequest(line []byte) (request, *protoError) {
	var w wireRequest
	if err := json.Unmarshal(line, &w); err != nil {
		// The id is echoed when it could be read, so a client can match
		// the error to its request. The type is kept when only another
		// field had the wrong type (json.Unmarshal decodes the rest):
		// before hello, the hub judges the message by it.
		var r request
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && w.Type != nil {
			r.Type = *w.Type
		}
		return r, &protoError{id: readID(line), code: codeBadRequest, message: "message is not a JSON object of the protocol: " + err.Error()}
	}
	if w.Type == nil || *w.Type == "" {
		return request{}, &protoError{id: w.ID, code: codeBadRequest, message: "missing type"}
	}
	r := request{Type: *w.Type, ID: w.ID, Since: w.Since, Presence: w.Presence != nil && *w.Presence}
	if w.Token != nil {
		r.Token = *w.Token
	}
	if w.Channel != nil {
		r.Channel = *w.Channel
	}
	bad := func(msg string) (request, *protoError) {
		return r, &protoError{id: w.ID, code: codeBadRequest, message: msg}
	}
	switch r.Type {
	case typeHello:
		if w.Token != nil && *w.Token == "" {
			return bad("empty token (omit it for an anonymous hello)")
		}
	case typeSubscribe, typeUnsubscribe, typePresence:
		if w.ID == nil {
			return bad("missing id")
		}
		if w.Channel == nil {
			return bad("missing channel")
		}
		if r.Type != typeSubscribe && w.Since != nil {
			return bad("since is only for subscribe")
		}
		if r.Type != typeSubscribe && w.Presence != nil {
			return bad("presence is a flag of subscribe only")
		}
	case typePing:
		if w.ID == nil {
			return bad("missing id")
		}
	case "publish":
		return bad("clients cannot publish")
	default:
		return bad("unknown type " + strconv.Quote(r.Type))
	}
	return r, nil
}

// readID returns the id of a message that did not decode, when it has a
// valid one.
func readID(line []byte) *uint64 {
	var v struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(line, &v) != nil || v.ID == nil {
		return nil
	}
	id, err := strconv.ParseUint(string(v.ID), 10, 64)
	if err != nil {
		return nil
	}
	return &id
}

// The replies the hub sends, encoded with encoding/json. Events are encoded
// by appendEvent instead: they are the hot path.
type (
	welcomeMsg struct {
		Type    string `json:"type"`
		Session string `json:"session"`
		Subject string `json:"subject"`
	}
	subscribedMsg struct {
		Type      string            `json:"type"`
		ID        *uint64           `json:"id,omitempty"`
		Channel   string            `json:"channel"`
		Epoch     string            `json:"epoch"`
		Offset    uint64            `json:"offset"`
		Recovered bool              `json:"recovered"`
		Missed    []json.RawMessage `json:"missed,omitempty"`
	}
	idMsg struct {
		Type    string  `json:"type"`
		ID      *uint64 `json:"id,omitempty"`
		Channel string  `json:"channel,omitempty"`
	}
	errorMsg struct {
		Type    string  `json:"type"`
		ID      *uint64 `json:"id,omitempty"`
		Code    string  `json:"code"`
		Message string  `json:"message,omitempty"`
	}
)

// encode marshals a reply. The reply types cannot fail to encode.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: encoding a reply: " + err.Error())
	}
	return b
}

// quoteChannel returns the JSON string for a channel name, computed once per
// channel and shared by all its event messages.
func quoteChannel(name string) []byte {
	b, _ := json.Marshal(name) // a string always encodes
	return b
}

// appendEvent appends the event message for one publication:
// {"type":"event","channel":..,"offset":..,"event":<data>}. data must be
// one compact JSON value (see compactEvent).
func appendEvent(dst, quotedChannel []byte, offset uint64, data []byte) []byte {
	dst = append(dst, `{"type":"event","channel":`...)
	dst = append(dst, quotedChannel...)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, offset, 10)
	dst = append(dst, `,"event":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// compactEvent returns data as a JSON value without newlines, so that it
// cannot split a frame's lines, or false when data is not JSON.
func compactEvent(data []byte) ([]byte, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	if bytes.IndexByte(data, '\n') < 0 && bytes.IndexByte(data, '\r') < 0 {
		return data, true
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

// eachLine calls fn with every non-blank line of a client frame, in order,
// until fn returns false.
func eachLine(frame []byte, fn func(line []byte) bool) {
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !fn(line) {
			return
		}
	}
}
