// Package wsframe writes and parses WebSocket frame headers (RFC 6455,
// section 5.2) for the code that writes frames to a socket itself: the
// hub's write pool and the benchmark harness's writer and readers.
// Everything else goes through gorilla/websocket.
//
// It knows no extension: the reserved bits are never set and, when
// parsed, are an error.
package wsframe

import (
	"encoding/binary"
	"errors"
)

// Opcodes (RFC 6455, section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xa
)

// MaxHeaderLen is the longest frame header: 2 bytes, an 8-byte length and
// a 4-byte masking key.
const MaxHeaderLen = 14

// MaxControlPayload is the largest payload of a close, ping or pong frame.
const MaxControlPayload = 125

var (
	// ErrShort reports that the bytes given hold less than a whole
	// header: read more and parse again.
	ErrShort = errors.New("wsframe: incomplete frame header")
	// ErrReserved reports a frame with a reserved bit or opcode set.
	ErrReserved = errors.New("wsframe: reserved bit or opcode set")
	// ErrLength reports a length that RFC 6455 does not allow: a 64-bit
	// length with its top bit set, a length not in its shortest form, or
	// a control frame over 125 bytes or fragmented.
	ErrLength = errors.New("wsframe: invalid frame length")
)

// AppendHeader appends the header of an unmasked, final frame (as a
// server sends) of opcode op and size payload bytes.
func AppendHeader(dst []byte, op byte, size int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case size <= 125:
		return append(dst, byte(size))
	case size <= 0xffff:
		dst = append(dst, 126)
		return binary.BigEndian.AppendUint16(dst, uint16(size))
	default:
		dst = append(dst, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(size))
	}
}

// AppendMasked appends a whole masked, final frame (as a client sends) of
// opcode op carrying payload, masked with key.
func AppendMasked(dst []byte, op byte, key [4]byte, payload []byte) []byte {
	start := len(dst)
	dst = AppendHeader(dst, op, len(payload))
	dst[start+1] |= 0x80
	dst = append(dst, key[:]...)
	for i, b := range payload {
		dst = append(dst, b^key[i&3])
	}
	return dst
}

// Header is a parsed frame header.
type Header struct {
	Fin    bool
	Op     byte
	Masked bool
	Key    [4]byte // the masking key, when Masked
	Size   uint64  // payload bytes
	Len    int     // header bytes: the payload starts at b[Len]
}

// IsControl reports whether the frame is a close, ping or pong frame.
func (h Header) IsControl() bool { return h.Op&0x8 != 0 }

// ParseHeader parses the frame header at the start of b. It returns
// ErrShort when b holds less than a whole header, ErrReserved or
// ErrLength for a header no endpoint may send.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 2 {
		return Header{}, ErrShort
	}
	h := Header{Fin: b[0]&0x80 != 0, Op: b[0] & 0x0f, Masked: b[1]&0x80 != 0, Len: 2}
	if b[0]&0x70 != 0 {
		return h, ErrReserved
	}
	switch h.Op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return h, ErrReserved
	}
	h.Size = uint64(b[1] & 0x7f)
	switch h.Size {
	case 126:
		if len(b) < 4 {
			return h, ErrShort
		}
		h.Size, h.Len = uint64(binary.BigEndian.Uint16(b[2:4])), 4
		if h.Size <= 125 {
			return h, ErrLength
		}
	case 127:
		if len(b) < 10 {
			return h, ErrShort
		}
		h.Size, h.Len = binary.BigEndian.Uint64(b[2:10]), 10
		if h.Size <= 0xffff || h.Size>>63 != 0 {
			return h, ErrLength
		}
	}
	if h.IsControl() && (h.Size > MaxControlPayload || !h.Fin) {
		return h, ErrLength
	}
	if h.Masked {
		if len(b) < h.Len+4 {
			return h, ErrShort
		}
		copy(h.Key[:], b[h.Len:h.Len+4])
		h.Len += 4
	}
	return h, nil
}

// Unmask unmasks (or masks) payload in place with key, the payload
// starting at offset pos of its frame's payload.
func Unmask(key [4]byte, pos int, payload []byte) {
	for i := range payload {
		payload[i] ^= key[(pos+i)&3]
	}
}
