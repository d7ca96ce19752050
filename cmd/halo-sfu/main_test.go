package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any goroutine outlives the tests: every
// session, track reader, fan-out worker and listener must be stopped by the
// node's shutdown and the clients' Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Pion's SCTP/DTLS packages start no goroutines here; the only
		// long-lived ones are the runtime's and the test framework's.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
