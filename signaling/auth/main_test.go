package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests (the
// concurrent Sign/Verify test starts some).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
