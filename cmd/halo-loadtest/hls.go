package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// hlsMargin is how much longer than the HLS viewers' ramp the WebRTC run
// (its publishers) lasts, so the HLS viewers' wait for the playlist and
// their first parts fit in before their hold.
const hlsMargin = 10 * time.Second

// hlsRoom is the room the HLS viewers watch: --hls-url's, or the first
// room of the scenario.
func hlsRoom(o options) string {
	rooms := o.scenario.Plan().Rooms
	if len(rooms) == 0 {
		return o.room
	}
	return rooms[0].Name
}

// checkHLS checks the HLS flags and lengthens the scenario so that its
// publishers send for the HLS viewers' ramp and hold too.
func checkHLS(o *options) error {
	if o.hls < 0 {
		return errors.New("--hls must be >= 0")
	}
	if o.hls == 0 {
		if o.hlsURL != "" {
			return errors.New("--hls-url needs --hls N")
		}
		return nil
	}
	if o.hlsURL == "" && o.target.URL == "" {
		return errors.New("--hls needs --url (the node's signalling URL) or --hls-url")
	}
	ramp := time.Duration(float64(o.hls) / o.ramp * float64(time.Second))
	o.scenario.Duration += loadtest.Duration(ramp + hlsMargin)
	return o.scenario.Validate()
}

// startHLS starts the HLS viewers of o beside the WebRTC run; wait returns
// their report once their hold is over.
func startHLS(ctx context.Context, o options) (wait func() (*loadtest.HLSReport, error), err error) {
	u := o.hlsURL
	if u == "" {
		if u, err = loadtest.HLSURL(o.target.URL, hlsRoom(o)); err != nil {
			return nil, err
		}
	}
	cfg := loadtest.HLSConfig{URL: u, Viewers: o.hls, Ramp: o.ramp, Hold: o.duration, Server: o.server}
	type result struct {
		rep *loadtest.HLSReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := loadtest.RunHLS(ctx, cfg)
		done <- result{rep, err}
	}()
	return func() (*loadtest.HLSReport, error) {
		r := <-done
		if r.err != nil {
			r.err = fmt.Errorf("HLS viewers: %w", r.err)
		}
		return r.rep, r.err
	}, nil
}
