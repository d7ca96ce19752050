package sfu

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// A control message cut into chunks comes back whole; a bad chunk or one
// that makes the message too long is an error, and the next message is
// read afresh.
func TestTrunkWire_ChunksReassemble(t *testing.T) {
	msg := bytes.Repeat([]byte("x"), 3*trunkChunk+7)
	var r trunkReassembler
	var got []byte
	for rest := msg; len(rest) > 0; {
		n := min(len(rest), trunkChunk)
		flag := byte('.')
		if n < len(rest) {
			flag = '+'
		}
		m, done, err := r.add(append([]byte{flag}, rest[:n]...))
		if err != nil {
			t.Fatal(err)
		}
		if done {
			got = m
		}
		rest = rest[n:]
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("reassembled %d bytes, want %d", len(got), len(msg))
	}
	if _, _, err := r.add([]byte("xyz")); !errors.Is(err, errTrunkMessage) {
		t.Errorf("a chunk without a flag: %v", err)
	}
	big := append([]byte{'+'}, make([]byte, trunkChunk)...)
	var err error
	for i := 0; i <= trunkMaxMessage/trunkChunk && err == nil; i++ {
		_, _, err = r.add(big)
	}
	if !errors.Is(err, errTrunkMessage) {
		t.Errorf("an endless message: %v", err)
	}
	if m, done, err := r.add([]byte(".ok")); err != nil || !done || string(m) != "ok" {
		t.Errorf("after an error: %q %v %v", m, done, err)
	}
}

// The catalogue of bad requests, each refused with a reason.
func TestTrunkWire_BadRequestsAreRefused(t *testing.T) {
	long := strings.Repeat("a", trunkMaxID+1)
	for name, in := range map[string]string{
		"not json":      "{",
		"no sdp":        `{"seq":1,"add":[{"room":"r","tracks":["t"]}]}`,
		"empty room":    `{"seq":1,"sdp":"v=0","add":[{"room":"","tracks":["t"]}]}`,
		"no tracks":     `{"seq":1,"sdp":"v=0","add":[{"room":"r","tracks":[]}]}`,
		"empty track":   `{"seq":1,"sdp":"v=0","add":[{"room":"r","tracks":[""]}]}`,
		"long room":     `{"seq":1,"sdp":"v=0","add":[{"room":"` + long + `","tracks":["t"]}]}`,
		"empty removed": `{"seq":1,"sdp":"v=0","remove":[""]}`,
		"wrong types":   `{"seq":"1","sdp":3}`,
		"ack with sdp":  `{"seq":1,"applied":true,"sdp":"v=0"}`,
	} {
		if _, err := decodeTrunkRequest([]byte(in)); !errors.Is(err, errTrunkMessage) {
			t.Errorf("%s: %v, want errTrunkMessage", name, err)
		}
	}
	if _, err := decodeTrunkReply([]byte(`{"seq":1}`)); !errors.Is(err, errTrunkMessage) {
		t.Errorf("a reply with neither sdp nor error: %v", err)
	}
	if r, err := decodeTrunkRequest([]byte(`{"seq":2,"sdp":"v=0","add":[{"room":"r","tracks":["t_1","t_2"]}],"remove":["t_0"]}`)); err != nil || r.Seq != 2 || len(r.Add[0].Tracks) != 2 {
		t.Errorf("a good request: %+v %v", r, err)
	}
}

// FuzzTrunkMessage feeds the control channel's reader (chunks, then the
// request and reply decoders): it never panics and accepts nothing that
// breaks the decoders' bounds.
func FuzzTrunkMessage(f *testing.F) {
	f.Add([]byte(`.{"seq":1,"sdp":"v=0","add":[{"room":"r","tracks":["t"]}]}`))
	f.Add([]byte(`+{"seq":1,`))
	f.Add([]byte(`.{"seq":1,"sdp":"v=0","refused":["r"]}`))
	f.Add([]byte(`.{"seq":1,"code":"closed","error":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r trunkReassembler
		for len(b) > 0 {
			n := min(len(b), 64)
			if i := bytes.IndexAny(b[1:n], "+."); i >= 0 {
				n = i + 1
			}
			msg, done, err := r.add(b[:n])
			b = b[n:]
			if err != nil || !done {
				continue
			}
			if req, err := decodeTrunkRequest(msg); err == nil {
				if req.SDP == "" && !req.Applied {
					t.Fatal("a request without sdp was accepted")
				}
				for _, a := range req.Add {
					if a.Room == "" || len(a.Tracks) == 0 {
						t.Fatal("an empty add was accepted")
					}
				}
			}
			if rep, err := decodeTrunkReply(msg); err == nil && rep.SDP == "" && rep.Error == "" {
				t.Fatal("an empty reply was accepted")
			}
		}
	})
}
