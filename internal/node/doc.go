// Package node is the composition root: the only package that knows every
// layer of a HaloBuzz Live node. New builds them from one configuration, in
// one place: the media engine (sfu), the room store (memory alone, Redis in
// a cluster), the room manager (room), the signalling server and its relay
// dialer (signaling) and the metrics. Start opens the listeners; Shutdown
// drains (new joins refused, every participant told, relays handed over)
// and closes them; Run is a process's whole life. cmd/halo-sfu is flags and
// Run; the load tester's tests and the region simulation start nodes
// through here (the simulation runs the binary), so nothing copies the
// wiring.
//
// Its tests are the end-to-end specification of the product: real Pion
// peers, the load tester's clients, headless Chromium, redis-server and
// Prometheus against nodes started here, in this process or, for failure
// tests, in one of their own (testutil.StartChild).
//
// What it must not do: hold behaviour of its own. A rule about rooms,
// media or the wire belongs to the layer it is about; this package only
// connects the layers and owns the listeners' lifetimes.
package node
