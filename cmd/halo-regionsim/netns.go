package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// nsPrefix starts the name of every network namespace (and link) the
// simulation creates, so a crashed run's leftovers can be found and removed.
const nsPrefix = "halosim-"

// region is one simulated region: a network namespace with one address.
type region struct {
	name string // nepal, india, europe
	ns   string // halosim-nepal
	addr string // 10.77.0.1
	dev  string // its one link to the others (wan0 or the TUN device)
}

// regions are the three regions, in the order of their addresses.
var regions = []*region{
	{name: "nepal", ns: nsPrefix + "nepal", addr: "10.77.0.1"},
	{name: "india", ns: nsPrefix + "india", addr: "10.77.0.2"},
	{name: "europe", ns: nsPrefix + "europe", addr: "10.77.0.3"},
}

// wanNS holds the bridge joining the regions in netem mode; nothing else
// lives there and it has no address.
const wanNS = nsPrefix + "wan"

// oneWay is the one-way delay between two regions, the same in both
// directions (the round trip is twice it).
func oneWay(a, b string) time.Duration {
	if a == b {
		return 0
	}
	switch pair := a + "-" + b; pair {
	case "nepal-india", "india-nepal":
		return 40 * time.Millisecond
	case "india-europe", "europe-india":
		return 120 * time.Millisecond
	default: // nepal-europe
		return 180 * time.Millisecond
	}
}

// ipCmd runs ip (iproute2) or tc with args and returns a clear error with
// its output.
func ipCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs a command inside namespace ns.
func inNS(ns, name string, args ...string) error {
	return ipCmd("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// checkHost says why the simulation cannot run here, or nil: it needs root,
// ip and tc from iproute2, and network namespaces.
func checkHost() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, links and tc): run it as root, e.g. sudo make region-sim")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s from iproute2 (apt-get install iproute2): %w", tool, err)
		}
	}
	probe := nsPrefix + "probe"
	_ = ipCmd("ip", "netns", "del", probe)
	if err := ipCmd("ip", "netns", "add", probe); err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	defer func() { _ = ipCmd("ip", "netns", "del", probe) }()
	if err := inNS(probe, "true"); err != nil {
		return fmt.Errorf("cannot enter a network namespace: %w", err)
	}
	return nil
}

// netemWorks reports whether tc netem can delay packets here (the kernel's
// sch_netem); the error says why not.
func netemWorks() error {
	probe := nsPrefix + "probe"
	_ = ipCmd("ip", "netns", "del", probe)
	if err := ipCmd("ip", "netns", "add", probe); err != nil {
		return err
	}
	defer func() { _ = ipCmd("ip", "netns", "del", probe) }()
	if err := inNS(probe, "ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	return inNS(probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
}

// cleanStale removes what an earlier run that did not clean up left: its
// namespaces (after killing what still runs in them). Only names with our
// prefix are touched; the lock (see lockRun) keeps a second live run out.
func cleanStale() error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		killNS(name)
		if err := ipCmd("ip", "netns", "del", name); err != nil {
			return fmt.Errorf("remove stale namespace: %w", err)
		}
		fmt.Fprintf(os.Stderr, "halo-regionsim: removed the stale namespace %s of an earlier run\n", name)
	}
	return nil
}

// killNS kills the processes still running in namespace ns (ours: the
// simulation's nodes, Redis and clients).
func killNS(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// lockRun takes an exclusive lock so two simulations never share the names,
// waiting up to wait for another run to end; the lock goes with the process.
func lockRun(wait time.Duration) (*os.File, error) {
	f, err := os.OpenFile("/run/halo-regionsim.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(500 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errors.New("another halo-regionsim is running (lock /run/halo-regionsim.lock held)")
		}
	}
}

// createNamespaces creates the three region namespaces with lo up.
func createNamespaces() error {
	for _, r := range regions {
		if err := ipCmd("ip", "netns", "add", r.ns); err != nil {
			return err
		}
		if err := inNS(r.ns, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
		// IPv4 only: no IPv6 link-local candidates to confuse ICE.
		_ = inNS(r.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	return nil
}

// removeNamespaces kills what runs in the simulation's namespaces and
// deletes them; links inside go with them.
func removeNamespaces() {
	for _, ns := range []string{regions[0].ns, regions[1].ns, regions[2].ns, wanNS} {
		killNS(ns)
		_ = ipCmd("ip", "netns", "del", ns)
	}
}

// delayQdisc is the leaf qdisc of one destination's class: netem delaying
// every packet by d (a variable so that the topology can be tested on a
// kernel without netem).
var delayQdisc = func(d time.Duration) []string {
	return []string{"netem", "delay", fmt.Sprintf("%dms", d.Milliseconds()), "limit", "100000"}
}

// setupNetem joins the regions through a bridge in wanNS, one veth each,
// and delays every packet on its way out of a region by the one-way delay
// to its destination: an HTB class per destination, a u32 filter on the
// destination address and a netem qdisc in the class.
func setupNetem() error {
	if err := ipCmd("ip", "netns", "add", wanNS); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "netns", "exec", wanNS, "ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "netns", "exec", wanNS, "ip", "link", "set", "br0", "up"},
	}
	for i, r := range regions {
		r.dev = "wan0"
		peer := fmt.Sprintf("port%d", i)
		steps = append(steps,
			[]string{"ip", "netns", "exec", wanNS, "ip", "link", "add", peer, "type", "veth", "peer", "name", "wan0", "netns", r.ns},
			[]string{"ip", "netns", "exec", wanNS, "ip", "link", "set", peer, "master", "br0", "up"},
			[]string{"ip", "netns", "exec", r.ns, "ip", "addr", "add", r.addr + "/24", "dev", "wan0"},
			[]string{"ip", "netns", "exec", r.ns, "ip", "link", "set", "wan0", "up"},
			[]string{"ip", "netns", "exec", r.ns, "tc", "qdisc", "add", "dev", "wan0", "root", "handle", "1:", "htb", "default", "99"},
			[]string{"ip", "netns", "exec", r.ns, "tc", "class", "add", "dev", "wan0", "parent", "1:", "classid", "1:99", "htb", "rate", "1gbit", "quantum", "60000"},
		)
		for j, o := range regions {
			if o == r {
				continue
			}
			class := fmt.Sprintf("1:%d", 10+j)
			steps = append(steps,
				[]string{"ip", "netns", "exec", r.ns, "tc", "class", "add", "dev", "wan0", "parent", "1:", "classid", class, "htb", "rate", "1gbit", "quantum", "60000"},
				append([]string{"ip", "netns", "exec", r.ns, "tc", "qdisc", "add", "dev", "wan0", "parent", class, "handle", fmt.Sprintf("%d:", 10+j)},
					delayQdisc(oneWay(r.name, o.name))...),
				[]string{"ip", "netns", "exec", r.ns, "tc", "filter", "add", "dev", "wan0", "parent", "1:", "protocol", "ip", "prio", "1",
					"u32", "match", "ip", "dst", o.addr + "/32", "flowid", class},
			)
		}
	}
	for _, s := range steps {
		if err := ipCmd(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}
