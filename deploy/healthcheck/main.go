// Command halo-healthcheck is the container image's HEALTHCHECK: it asks
// the halo-sfu in the same container for /healthz and exits 0 when it
// answers 200, 1 otherwise. The image has no shell, curl or wget (it is
// FROM scratch), so the check is a static binary of its own.
//
// The address is HALO_HTTP_LISTEN's port on loopback (the node's own
// setting, :7880 by default), or the first argument (host:port).
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	os.Exit(check(os.Args[1:], os.Getenv("HALO_HTTP_LISTEN"), os.Stderr))
}

// check returns the exit code: 0 when /healthz answers 200 within 2 s.
func check(args []string, listen string, stderr io.Writer) int {
	addr, err := target(args, listen)
	if err != nil {
		fmt.Fprintln(stderr, "halo-healthcheck:", err)
		return 1
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		fmt.Fprintln(stderr, "halo-healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "halo-healthcheck: /healthz answered", resp.Status)
		return 1
	}
	return 0
}

// target is the address to check: the argument, else loopback on the port
// of listen (http.listen), else the default port.
func target(args []string, listen string) (string, error) {
	if len(args) > 0 {
		if _, _, err := net.SplitHostPort(args[0]); err != nil {
			return "", fmt.Errorf("address %q: %w", args[0], err)
		}
		return args[0], nil
	}
	if listen == "" {
		listen = ":7880"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("HALO_HTTP_LISTEN %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
