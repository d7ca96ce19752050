package node

import (
	"log/slog"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/hls"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling"
	"github.com/prometheus/client_golang/prometheus"
)

// startHLS gives signalling the LL-HLS server of the node's rooms (when
// hls.enabled) and returns what stops it.
func startHLS(cfg *config.Config, rooms *room.Manager, srv *signaling.Server, reg prometheus.Registerer, log *slog.Logger) func() {
	if !cfg.HLS.Enabled {
		return func() {}
	}
	h := hls.NewServer(hls.ConfigOf(cfg.HLS), hls.RoomSource(rooms), log)
	h.RegisterMetrics(reg)
	srv.SetHLS(h)
	return h.Close
}
