package node

import (
	"log/slog"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/record"
	"github.com/halobuzz/live/signaling"
	"github.com/prometheus/client_golang/prometheus"
)

// recordingCloseWait bounds how long a stopping node waits for its spool
// to be uploaded; what is left stays in recording.spool_dir.
const recordingCloseWait = 5 * time.Second

// startRecording gives signalling the node's recorder when
// recording.enabled (it reads the rooms' LL-HLS, so it needs
// hls.enabled), and returns what stops the recordings and then
// stopHLS, the LL-HLS they read.
func startRecording(cfg *config.Config, srv *signaling.Server, reg prometheus.Registerer, log *slog.Logger, stopHLS func()) (func(), error) {
	if !cfg.Recording.Enabled || srv.HLSHandler() == nil {
		record.RegisterMetrics(reg, nil) // at 0: every node exports what the alert rules read
		return stopHLS, nil
	}
	m, err := record.New(record.ConfigOf(cfg), srv.HLSHandler(), log)
	if err != nil {
		stopHLS()
		return nil, err
	}
	record.RegisterMetrics(reg, m)
	srv.SetRecorder(m)
	return func() {
		m.Close(recordingCloseWait)
		stopHLS()
	}, nil
}
