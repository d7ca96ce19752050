package node

import (
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
)

type layerStats struct {
	FrameWidth   int `json:"frameWidth"`
	FrameHeight  int `json:"frameHeight"`
	PacketsLost  int `json:"packetsLost"`
	FramesDecode int `json:"framesDecoded"`
}

// The live page at 720p publishes simulcast (its default from 720p), over
// WHIP and over the WebSocket. Viewers in Chromium: a WHEP player decodes
// 1280x720, one with ?layer=low 320x180 (a quarter of each side); a
// WebSocket player that picks low, then best, changes resolution each
// time without losing a packet.
func TestBrowser_SimulcastLayersPerViewer(t *testing.T) {
	for _, via := range []string{"whip", "ws"} {
		t.Run(via, func(t *testing.T) {
			n := startNode(t, nil)
			b := newBrowser(t)
			room := "sim-" + via
			query := "&quality=hd"
			if via == "whip" {
				query += "&via=whip"
			}
			capture := goLiveQuery(t, b.ctx, n, room, query)
			if capture.Width != 1280 || capture.Height != 720 {
				t.Fatalf("capture %+v, want 1280x720", capture)
			}
			testutil.Eventually(t, "the page publishes three layers", func() bool {
				r := n.rooms.Room(room)
				if r == nil {
					return false
				}
				for _, tr := range r.Tracks() {
					if tr.Kind == "video" && len(tr.Layers) == 3 {
						return true
					}
				}
				return false
			})

			high, low := b.tab("high"), b.tab("low")
			watchQuery(t, high, n, room, "&via=whep")
			watchQuery(t, low, n, room, "&via=whep&layer=low")
			waitDecoded(t, high, size{1280, 720})
			waitDecoded(t, low, size{320, 180})

			ws := b.tab("ws")
			watch(t, ws, n, room, "")
			waitDecoded(t, ws, size{1280, 720})
			for _, step := range []struct {
				layer string
				want  size
			}{{"low", size{320, 180}}, {"high", size{1280, 720}}} {
				start := time.Now()
				var ok bool
				if err := evalJSON(ws, `(() => { const s = document.getElementById('layer-pick'); s.value = '`+step.layer+`';
					return s.dispatchEvent(new Event('change')); })()`, &ok); err != nil {
					t.Fatal(err)
				}
				waitPage(t, ws, "the WebSocket player at "+step.layer, haloStatsJS, func(s layerStats) bool {
					return s.FrameWidth == step.want.Width && s.FrameHeight == step.want.Height
				})
				t.Logf("%s: the WebSocket player decoded %dx%d %v after choosing %s", via, step.want.Width, step.want.Height, time.Since(start).Round(10*time.Millisecond), step.layer)
			}
			var st layerStats
			if err := evalJSON(ws, haloStatsJS, &st); err != nil {
				t.Fatal(err)
			}
			if st.PacketsLost != 0 {
				t.Errorf("the WebSocket player lost %d packets across the layer changes", st.PacketsLost)
			}
			if s := n.engine.Stats(); s.LayerSwitches < 2 {
				t.Errorf("engine counted %d layer switches, want at least 2", s.LayerSwitches)
			}
			assertNoPageProblems(t, b)
		})
	}
}

// Layers nobody watches are paused: with only a viewer capped low, the live
// page stops sending its two upper layers (told by the server); when the
// viewer asks for the best, the page sends them again and the viewer gets
// 1280x720.
func TestBrowser_UnwatchedSimulcastLayersArePaused(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	const room = "sim-pause"
	goLiveQuery(t, b.ctx, n, room, "&quality=hd")
	viewer := b.tab("viewer")
	watchQuery(t, viewer, n, room, "&layer=low")
	waitDecoded(t, viewer, size{320, 180})
	waitPage(t, b.ctx, "the live page pauses the layers nobody watches", `window.haloSendLayers()`, func(l map[string]bool) bool {
		return len(l) == 3 && l["q"] && !l["h"] && !l["f"]
	})
	start := time.Now()
	var ok bool
	if err := evalJSON(viewer, `(() => { const s = document.getElementById('layer-pick'); s.value = 'high';
		return s.dispatchEvent(new Event('change')); })()`, &ok); err != nil {
		t.Fatal(err)
	}
	waitPage(t, b.ctx, "the live page sends its top layer again", `window.haloSendLayers()`, func(l map[string]bool) bool {
		return l["q"] && l["f"]
	})
	waitPage(t, viewer, "the viewer at 1280x720", haloStatsJS, func(s layerStats) bool {
		return s.FrameWidth == 1280 && s.FrameHeight == 720
	})
	t.Logf("a paused top layer reached the viewer %v after it asked", time.Since(start).Round(10*time.Millisecond))
	assertNoPageProblems(t, b)
}
