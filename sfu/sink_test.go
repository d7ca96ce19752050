package sfu

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any goroutine outlives the tests and
// benchmarks: every forwarder (Track.start/end), fan-out worker, engine and
// peer connection a test starts must be stopped by it.
//
// It doubles as a UDP sink process for the benchmarks: the receiving side
// of loopback traffic must be another process, so that the benchmark's CPU
// time is the sender's (including the kernel's delivery to a reading
// socket, as a real viewer on this machine costs) and not the reader's.
func TestMain(m *testing.M) {
	if os.Getenv("HALO_UDP_SINK") != "" {
		runSink()
		return
	}
	if os.Getenv("HALO_PION_PUBLISHER") != "" {
		runPionPublisher()
		return
	}
	goleak.VerifyTestMain(m)
}

func runSink() {
	n, _ := strconv.Atoi(os.Getenv("HALO_UDP_SINK"))
	n = max(n, 1)
	conns := make([]*net.UDPConn, n)
	addrs := make([]string, n)
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		_ = c.SetReadBuffer(8 << 20)
		conns[i], addrs[i] = c, c.LocalAddr().String()
	}
	fmt.Println(strings.Join(addrs, " "))
	// One socket is read in a busy loop; several are read each by its
	// own goroutine, which sleeps until its next packet, as a process
	// full of viewers does.
	for _, c := range conns {
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					os.Exit(0)
				}
			}
		}()
	}
	// Stop when the parent closes our stdin.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

// startSink runs the sink process with one socket and returns its address.
func startSink(b *testing.B) netip.AddrPort { return startSinks(b, 1)[0] }

// startSinks runs the sink process with n sockets.
func startSinks(b *testing.B, n int) []netip.AddrPort {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^$")
	cmd.Env = append(os.Environ(), "HALO_UDP_SINK="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	var out []netip.AddrPort
	for _, f := range strings.Fields(line) {
		addr, err := netip.ParseAddrPort(f)
		if err != nil {
			b.Fatalf("sink: %q", line)
		}
		out = append(out, addr)
	}
	if len(out) != n {
		b.Fatalf("sink: %d addresses, want %d", len(out), n)
	}
	return out
}
