// Package testutil holds what the tests of several packages share: polling
// for a condition (Eventually), a real redis-server on a free loopback port
// (StartRedis), a loopback Pion peer (LoopbackPeer), a buffer a test reads
// while a process writes it (SyncBuffer), free ports, and the test binary
// re-executed as a child process (StartChild), so that a test can kill a
// node the way a crash does.
//
// What it must not do: import any package of the server (sfu, room,
// signaling, internal/node). Those packages' own tests import it, and an
// import back would be a cycle; what a helper needs of a server package
// the test passes in.
package testutil
