package room

import "context"

// The /check page's ICE-TCP check, through room's API so that signalling
// speaks room's vocabulary only: the media engine answers it.

// ICETCPOffered reports whether the node has an ICE-TCP port the check can
// try.
func (m *Manager) ICETCPOffered() bool { return m.engine != nil && m.engine.TCPOffered() }

// CheckICETCP answers a check page's offer with the node's ICE-TCP
// candidates only: the connection comes up only if the browser reaches
// the node's TCP port.
func (m *Manager) CheckICETCP(ctx context.Context, offer string) (string, error) {
	return m.engine.CheckTCP(ctx, offer)
}
