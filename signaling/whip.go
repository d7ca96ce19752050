package signaling

import (
	"net/http"
	"sync"

	"github.com/halobuzz/live/room"
)

// sessions are the WHIP and WHEP session resources of the node, by id.
type sessions struct {
	mu sync.Mutex
	m  map[string]*room.Participant
}

func newSessions() *sessions { return &sessions{m: map[string]*room.Participant{}} }

func (s *sessions) closeAll() {
	s.mu.Lock()
	all := s.m
	s.m = map[string]*room.Participant{}
	s.mu.Unlock()
	for _, p := range all {
		p.Leave()
	}
}

// routeWHIP registers WHIP and WHEP (issue 3).
func (s *Server) routeWHIP(mux *http.ServeMux) {}
