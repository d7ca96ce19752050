package signaling

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: every
// socket reader and writer, session timer and limiter must stop with the
// server or the client it belongs to. No exclusions: the tests here start
// no Pion connection (the node's tests in internal/node do, and list the one
// Pion goroutine they tolerate).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
