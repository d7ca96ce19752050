package testutil

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// childEnv marks the test binary re-executed by StartChild.
const childEnv = "HALOTEST_CHILD" // not HALO_: the server refuses unknown HALO_ variables

// IsChild reports whether this test binary was started by StartChild: its
// TestMain then runs the child's work (a node) instead of the tests.
func IsChild() bool { return os.Getenv(childEnv) == "1" }

// Child is this test binary running in a process of its own, so that a
// test can kill it as a crash would.
type Child struct {
	cmd  *exec.Cmd
	done chan struct{}
	// Log is what the child wrote to stdout and stderr.
	Log *SyncBuffer
}

// StartChild re-executes the test binary with env added to this process's
// environment (its HALO_* variables removed: ServerEnv) and no test to run;
// the package's TestMain sees IsChild. The child is killed when t ends, and
// its log shown if t failed.
func StartChild(t testing.TB, name string, env []string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(ServerEnv(env), childEnv+"=1")
	c := &Child{cmd: cmd, done: make(chan struct{}), Log: &SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = c.Log, c.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, c.Log.String())
		}
	})
	return c
}

// Kill ends the child as a crash would (SIGKILL) and waits for it.
// Stop pauses the child (SIGSTOP), as a VM pause or a long stall does:
// its sockets stay open and fill; Continue resumes it (SIGCONT).
func (c *Child) Stop() { _ = c.cmd.Process.Signal(syscall.SIGSTOP) }

// Continue resumes a child paused by Stop.
func (c *Child) Continue() { _ = c.cmd.Process.Signal(syscall.SIGCONT) }

func (c *Child) Kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}
