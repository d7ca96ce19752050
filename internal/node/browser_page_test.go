package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// A broadcaster on the page's WHIP path presses Stop: the page DELETEs its
// session before it closes the connection, so the server ends the tracks
// at once instead of holding them for the republish grace, and a viewer
// over WebSocket is told track_unpublished within a second.
func TestBrowserPage_WHIPStopReachesViewersAtOnce(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	goLive(t, b.ctx, n, "stop", "whip")

	ctx, cancel := context.WithTimeout(context.Background(), browserDeadline)
	defer cancel()
	// The observer has joined (its join answered) before Stop is pressed.
	o := observe(t, ctx, n, "stop")
	pressed := time.Now()
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatalf("press Stop: %v", err)
	}
	var told time.Duration
	deadline := pressed.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := o.find("track_unpublished"); ok {
			told = time.Since(pressed)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if told == 0 {
		t.Fatalf("the viewer was not told track_unpublished within 5 s of Stop (the republish grace is 10 s)")
	}
	t.Logf("track_unpublished %v after Stop", told.Round(time.Millisecond))
	if told > time.Second {
		t.Fatalf("the viewer was told track_unpublished %v after Stop; want < 1 s", told)
	}
	assertNoPageProblems(t, b)
}

// A WHEP viewer opened before the broadcast: the node answers 404 not_found
// with Retry-After, the page waits that long (not a fixed period of its
// own) before it asks again, and it plays once the broadcast starts.
func TestBrowserPage_WHEPViewerWaitsAsTheServerSays(t *testing.T) {
	n := startNode(t, nil)
	const room = "whep-wait"

	// What a WHEP player is told in a room with nothing published.
	pc := newTestPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer := testutil.LocalOffer(t, pc)
	_ = pc.Close()
	resp := doHTTP(t, "POST", n.base+"/whep/"+room, n.token(room, "curl", false, true), "application/sdp", offer, nil)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	// signaling's retryAfterNoTracks.
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Retry-After") != "5" || !strings.HasPrefix(body, "not_found:") {
		t.Fatalf("WHEP to an empty room: %d, Retry-After %q, %q; want 404, 5, not_found", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	b := newBrowser(t)
	watch(t, b.ctx, n, room, "whep")
	type wait struct {
		Code string `json:"code"`
		Ms   int    `json:"ms"`
	}
	type page struct {
		whepPageStats
		Waits []wait `json:"waits"`
	}
	// The page's own fallback, with no Retry-After, is 10 s: 5000 ms is
	// the server's word.
	p := waitPage(t, b.ctx, "the page told to wait", haloStatsJS, func(p page) bool { return len(p.Waits) >= 1 })
	if p.Waits[0] != (wait{Code: "not_found", Ms: 5000}) || p.State != "waiting" {
		t.Fatalf("the page waited %+v in state %q; want not_found for 5000 ms (Retry-After: 5), waiting", p.Waits, p.State)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*browserDeadline)
	defer cancel()
	n.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	p = waitPage(t, b.ctx, "the WHEP page receiving once the broadcast starts", haloStatsJS, func(p page) bool {
		return p.State == "live" && p.VideoPacketsReceived > 50
	})
	for _, w := range p.Waits {
		if w != (wait{Code: "not_found", Ms: 5000}) {
			t.Fatalf("the page waited %+v; want not_found for 5000 ms each time", p.Waits)
		}
	}
	t.Logf("the page waited %+v, then played", p.Waits)
	assertNoPageProblems(t, b)
}

// chatLine is one line of a page's chat log (window.haloChat()).
type chatLine struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Identity string `json:"identity"`
	Text     string `json:"text"`
}

const haloChatJS = `window.haloChat ? window.haloChat() : []`

// hasLine reports whether lines holds one of kind from identity saying text.
func hasLine(lines []chatLine, kind, identity, text string) bool {
	for _, l := range lines {
		if l.Kind == kind && l.Identity == identity && l.Text == text {
			return true
		}
	}
	return false
}

// A viewer sees the audience count, chats and reacts from the watch page,
// and the broadcaster sees both on the live page (and the viewer its own);
// over WebSocket and over WHIP/WHEP alike. The quality picker shows only
// for a broadcast in layers (simulcast: the live page's HD).
func TestBrowserPage_ViewerSeesAudienceChatsAndReacts(t *testing.T) {
	for _, tc := range []struct{ name, live, watch string }{
		{"ws", "", ""},
		{"whip-whep", "&via=whip", "&via=whep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, nil)
			b := newBrowser(t)
			live, viewer := b.ctx, b.tab("watch")
			room := "chat-" + tc.name
			capture := goLiveQuery(t, live, n, room, tc.live)
			watchQuery(t, viewer, n, room, tc.watch)
			if tc.name == "ws" {
				waitDecoded(t, viewer, capture)
			} else {
				waitPage(t, viewer, "the WHEP page receiving", haloStatsJS, func(p whepPageStats) bool {
					return p.State == "live" && p.VideoPacketsReceived > 50
				})
			}
			waitPage(t, viewer, "the audience count on the watch page", `document.getElementById('watch-viewers').textContent`,
				func(s string) bool { return s == "1" })
			var hidden bool
			if err := evalJSON(viewer, `document.getElementById('layer-switch').hidden`, &hidden); err != nil || !hidden {
				t.Fatalf("the quality picker shows for a broadcast without layers (hidden=%v, %v)", hidden, err)
			}

			const msg = "hello from the audience"
			ctx, cancel := context.WithTimeout(viewer, browserDeadline)
			defer cancel()
			if err := chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.ID("watch-chat-text"), msg),
				chromedp.Click(`#watch-chat-form button[type="submit"]`),
				chromedp.Click(`#watch-reactions button`),
			); err != nil {
				t.Fatalf("chat and react on the watch page: %v", err)
			}
			who := "viewer-" + room
			waitPage(t, live, "the viewer's message and reaction on the live page", haloChatJS, func(l []chatLine) bool {
				return hasLine(l, "chat", who, msg) && hasLine(l, "reaction", who, "👏")
			})
			lines := waitPage(t, viewer, "the viewer's own message on the watch page", haloChatJS, func(l []chatLine) bool {
				return hasLine(l, "chat", who, msg)
			})
			var input string
			if err := evalJSON(viewer, `document.getElementById('watch-chat-text').value`, &input); err != nil || input != "" {
				t.Fatalf("the chat box still holds %q after sending (%v)", input, err)
			}
			t.Logf("watch page chat: %+v", lines)
			assertNoPageProblems(t, b)
		})
	}
}

// The quality picker shows when the broadcast is in layers (the live
// page's HD sends simulcast).
func TestBrowserPage_QualityPickerShowsForLayers(t *testing.T) {
	n := startNode(t, nil)
	b := newBrowser(t)
	live, viewer := b.ctx, b.tab("watch")
	const room = "picker"
	goLiveQuery(t, live, n, room, "&quality=hd")
	watch(t, viewer, n, room, "")
	waitPage(t, viewer, "the quality picker shown for a simulcast broadcast", `!document.getElementById('layer-switch').hidden`,
		func(shown bool) bool { return shown })
	assertNoPageProblems(t, b)
}
