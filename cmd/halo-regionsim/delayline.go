package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// delayLine is the user-space stand-in for tc netem, for kernels built
// without sch_netem: each region's namespace gets a TUN device as its one
// link, and this process, outside the namespaces, moves every IP packet from
// the source region's device to the destination region's after the
// one-way delay between them. Packets are never delivered early; order is
// kept per direction (a constant delay per pair, one FIFO per pair).
type delayLine struct {
	tuns    []*os.File      // per region, index as in regions
	byAddr  map[[4]byte]int // region index by IPv4 address
	links   map[[2]int]*link
	dropped atomic.Uint64 // a full queue (never expected at these rates)
	// cutDrops counts the packets a partition dropped (see cut).
	cutDrops atomic.Uint64
	wg       sync.WaitGroup
	stop     chan struct{}
}

// link is one direction between two regions: its FIFO, and whether a
// partition cuts it now (every packet, queued or new, is dropped).
type link struct {
	ch  chan delayed
	cut atomic.Bool
}

type delayed struct {
	due time.Time
	pkt []byte
}

// ifreq is struct ifreq as TUNSETIFF reads it: a name and the flags.
type ifreq struct {
	name  [16]byte
	flags uint16
	_     [22]byte
}

const (
	tunSetIff = 0x400454ca // TUNSETIFF
	iffTun    = 0x0001
	iffNoPI   = 0x1000
)

// openTun creates TUN device name in this namespace and returns its file.
func openTun(name string) (*os.File, error) {
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req ifreq
	copy(req.name[:], name)
	req.flags = iffTun | iffNoPI
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); e != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, e)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// startDelayLine gives every region a TUN device with its address and
// starts moving packets between them.
func startDelayLine() (*delayLine, error) {
	d := &delayLine{byAddr: map[[4]byte]int{}, links: map[[2]int]*link{}, stop: make(chan struct{})}
	for i, r := range regions {
		d.byAddr[netip.MustParseAddr(r.addr).As4()] = i
		r.dev = fmt.Sprintf("%s%d", nsPrefix, i) // the name moves with the device
		f, err := openTun(r.dev)
		if err != nil {
			d.close()
			return nil, err
		}
		d.tuns = append(d.tuns, f)
		for _, s := range [][]string{
			{"ip", "link", "set", r.dev, "netns", r.ns},
			{"ip", "netns", "exec", r.ns, "ip", "addr", "add", r.addr + "/24", "dev", r.dev},
			{"ip", "netns", "exec", r.ns, "ip", "link", "set", r.dev, "up"},
		} {
			if err := ipCmd(s[0], s[1:]...); err != nil {
				d.close()
				return nil, err
			}
		}
	}
	for i := range regions {
		for j := range regions {
			if i == j {
				continue
			}
			l := &link{ch: make(chan delayed, 8192)}
			d.links[[2]int{i, j}] = l
			d.wg.Add(1)
			go func() { defer d.wg.Done(); d.deliver(l, d.tuns[j]) }()
		}
	}
	// The readers only once every link exists: they read d.links.
	for i := range regions {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.read(i) }()
	}
	return d, nil
}

// read takes region i's outgoing packets and queues each for its
// destination region; packets to anyone else are dropped (there is no one).
func (d *delayLine) read(i int) {
	buf := make([]byte, 65536)
	for {
		n, err := d.tuns[i].Read(buf)
		if err != nil {
			return // closed
		}
		if n < 20 || buf[0]>>4 != 4 {
			continue // IPv4 only
		}
		j, ok := d.byAddr[[4]byte(buf[16:20])]
		if !ok || j == i {
			continue
		}
		l := d.links[[2]int{i, j}]
		if l.cut.Load() {
			d.cutDrops.Add(1)
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		select {
		case l.ch <- delayed{due: time.Now().Add(oneWay(regions[i].name, regions[j].name)), pkt: pkt}:
		default:
			d.dropped.Add(1)
		}
	}
}

// deliver writes each queued packet to the destination device once due,
// unless a partition cut the link meanwhile (what was on the wire is lost).
func (d *delayLine) deliver(l *link, to *os.File) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var p delayed
		select {
		case p = <-l.ch:
		case <-d.stop:
			return
		}
		if wait := time.Until(p.due); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-d.stop:
				return
			}
		}
		if l.cut.Load() {
			d.cutDrops.Add(1)
			continue
		}
		if _, err := to.Write(p.pkt); errors.Is(err, os.ErrClosed) {
			return
		}
	}
}

// partition cuts every link between the regions of pairs (both
// directions) from at until heal: each packet between them, UDP or TCP,
// is dropped, whatever else flows. It returns at once; the schedule runs on
// a goroutine the delay line owns (close stops it).
func (d *delayLine) partition(pairs [][2]int, at, heal time.Time) {
	set := func(cut bool) {
		for _, p := range pairs {
			d.links[[2]int{p[0], p[1]}].cut.Store(cut)
			d.links[[2]int{p[1], p[0]}].cut.Store(cut)
		}
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		select {
		case <-t.C:
		case <-d.stop:
			return
		}
		set(true)
		defer set(false)
		t.Reset(time.Until(heal))
		select {
		case <-t.C:
		case <-d.stop:
		}
	}()
}

// close stops the delay line and closes the devices (which removes them).
func (d *delayLine) close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	for _, f := range d.tuns {
		_ = f.Close()
	}
	d.wg.Wait()
}
