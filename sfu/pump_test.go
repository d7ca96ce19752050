package sfu

// pump runs the forwarder's work synchronously until nothing is left: the
// tests and benchmarks that call ingest themselves drive a track with it.
func (t *Track) pump() {
	t.forwardPending()
	for t.replayRound() {
	}
}
