package hls

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: every
// muxer and server a test starts must be stopped by it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
