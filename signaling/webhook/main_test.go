package webhook

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: the
// worker's and the service's goroutines stop with them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
