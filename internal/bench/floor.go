package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"
)

// Floor is what this machine's kernel charges to move one event frame
// over loopback TCP, measured alone before the run, and what that implies
// for the run's load whatever the hub. Every delivery to a client in this
// process costs at least one write (the hub's) and one read (the
// client's); a hub can share one write and one read between several
// events only by letting them wait for each other.
type Floor struct {
	// FrameBytes is the size of the frame measured: one bench event as
	// the hub sends it, WebSocket header included.
	FrameBytes int `json:"frame_bytes"`
	// WriteUS and ReadUS are the least mean time, in microseconds, of a
	// write of that frame to a loopback TCP connection and of the read
	// that takes it at the other end, over a few batches.
	WriteUS float64 `json:"write_us"`
	ReadUS  float64 `json:"read_us"`
	// Cores is GOMAXPROCS: the CPUs the hub and clients can use at once.
	Cores int `json:"cores"`
	// ClientsPerChannel is the run's largest channel.
	ClientsPerChannel int `json:"clients_per_channel"`
	// FanoutMS is the least time, in milliseconds, that one event takes
	// to reach every client of that channel: a write and a read per
	// client, spread over every core.
	FanoutMS float64 `json:"fanout_ms"`
	// UnbatchedCores is the CPU, in cores, that the run's deliveries per
	// second take at least with each event in a frame of its own. Above
	// Cores, events must share frames, which makes them wait.
	UnbatchedCores float64 `json:"unbatched_cores"`
}

// Floor measurement: floorBatches batches of floorFrames frames each; the
// best batch counts, as the one least disturbed by other work.
// The write of a frame must never wait for its read, which comes after:
// floorMaxFrame stays well under any loopback TCP window.
const (
	floorBatches  = 5
	floorFrames   = 200
	floorMaxFrame = 4 << 10
)

// measureFloor measures the loopback write and read of a frameBytes
// frame; apply fills in what they mean for a run.
func measureFloor(frameBytes int) (*Floor, error) {
	write, read, err := loopbackCost(frameBytes)
	if err != nil {
		return nil, fmt.Errorf("bench: loopback floor: %w", err)
	}
	return &Floor{
		FrameBytes: frameBytes,
		WriteUS:    float64(write) / float64(time.Microsecond),
		ReadUS:     float64(read) / float64(time.Microsecond),
		Cores:      runtime.GOMAXPROCS(0),
	}, nil
}

// apply fills in the floor of clientsPerChannel clients on a channel and
// deliveriesPerSec deliveries per second in all.
func (f *Floor) apply(clientsPerChannel int, deliveriesPerSec float64) {
	perDelivery := (f.WriteUS + f.ReadUS) / 1e6 // seconds
	f.ClientsPerChannel = clientsPerChannel
	f.FanoutMS = perDelivery * 1e3 * float64(clientsPerChannel) / float64(f.Cores)
	f.UnbatchedCores = perDelivery * deliveriesPerSec
}

// loopbackCost returns the least mean cost of a write of a frameBytes
// frame to a loopback TCP connection and of the read that takes it.
// Loopback delivers during the write, so the read finds the frame
// waiting and never blocks: neither figure counts a wake-up.
func loopbackCost(frameBytes int) (write, read time.Duration, err error) {
	if frameBytes <= 0 || frameBytes > floorMaxFrame {
		return 0, 0, fmt.Errorf("frame size %d outside 1 to %d bytes", frameBytes, floorMaxFrame)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, 0, err
	}
	defer w.Close()
	r, ok := <-accepted
	if !ok {
		return 0, 0, errors.New("accept failed")
	}
	defer r.Close()

	frame := make([]byte, frameBytes)
	buf := make([]byte, frameBytes)
	write, read = time.Duration(1<<62), time.Duration(1<<62)
	for b := 0; b < floorBatches; b++ {
		var wsum, rsum time.Duration
		for i := 0; i < floorFrames; i++ {
			t0 := time.Now()
			if _, err := w.Write(frame); err != nil {
				return 0, 0, err
			}
			t1 := time.Now()
			if _, err := io.ReadFull(r, buf); err != nil {
				return 0, 0, err
			}
			wsum += t1.Sub(t0)
			rsum += time.Since(t1)
		}
		write, read = min(write, wsum/floorFrames), min(read, rsum/floorFrames)
	}
	return write, read, nil
}

// eventFrameBytes is the size of the frame that carries one bench event
// on channel: the hub's event message around the encoded event, and a
// WebSocket header.
func eventFrameBytes(channel string) int {
	msg := eventMessage(event{Seq: 1_000_000, Channel: channel, SentNS: int64(100 * time.Second)})
	return len(appendFrameHeader(nil, len(msg))) + len(msg)
}
