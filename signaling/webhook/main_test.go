package webhook

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: the
// worker's and the service's goroutines stop with them. Started by a
// benchmark as its webhook receiver (bench_receiver_test.go), it is that
// receiver instead.
func TestMain(m *testing.M) {
	if secret := os.Getenv(benchReceiverEnv); secret != "" {
		os.Exit(runBenchReceiver(secret))
	}
	goleak.VerifyTestMain(m)
}
