package node

import (
	"io"
	"net/http"
	"testing"

	"github.com/pion/webrtc/v4"
)

// A WHEP player waiting for a broadcast asks again every Retry-After and is
// refused 404 each time: the log at info stays quiet over its asks (each
// is at debug, demoted, not lost), and the sessions that are answered (the
// WHIP broadcaster, the player once the broadcast is on) are logged joining
// and leaving at info as before.
func TestWHEP_WaitingPlayerIsQuietAtInfo(t *testing.T) {
	const room, polls = "waiting", 4
	n := startLoggedNode(t, func(t *testing.T, recs []logRecord) {
		infoJoined, infoLeft := map[string]string{}, map[string]bool{}
		debugJoined := map[string]bool{}
		debugLeft := 0
		for _, r := range recs {
			if r.str("room") != room {
				continue
			}
			switch lvl, msg := r.str("level"), r.str("msg"); {
			case lvl == "INFO" && msg == "participant joined":
				infoJoined[r.str("participant")] = r.str("role")
			case lvl == "INFO" && msg == "participant left":
				infoLeft[r.str("participant")] = true
			case lvl == "DEBUG" && msg == "participant joined":
				debugJoined[r.str("participant")] = true
			case lvl == "DEBUG" && msg == "participant left":
				debugLeft++
			}
		}
		roles := map[string]int{}
		for p, role := range infoJoined {
			roles[role]++
			if !infoLeft[p] {
				t.Errorf("answered session %s (%s) not logged leaving at info", p, role)
			}
		}
		if roles["publisher"] != 1 || roles["viewer"] != 1 || len(infoLeft) != 2 {
			t.Errorf("info joins by role %v, %d info leaves; want the WHIP broadcaster and the one answered player only (each poll logged at info before)",
				roles, len(infoLeft))
		}
		if len(debugJoined) != polls+2 || debugLeft != polls {
			t.Errorf("%d joins and %d leaves at debug, want %d and %d (every poll, and the two answered sessions before their answer)",
				len(debugJoined), debugLeft, polls+2, polls)
		}
		for _, r := range recs {
			if p := r.str("participant"); debugJoined[p] && infoJoined[p] == "" && r.str("level") != "DEBUG" {
				t.Errorf("a refused poll's participant logged at %s: %v", r.str("level"), r)
			}
		}
	})
	token := n.token(room, "player", false, true)
	for i := range polls {
		pc := newTestPC(t)
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Fatal(err)
			}
		}
		c := &whipClient{pc: pc}
		resp := c.post(t, n.base+"/whep/"+room, token)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Retry-After") != "5" {
			t.Fatalf("poll %d of a room with nothing published: %d, Retry-After %q, %s; want 404 and 5", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		_ = pc.Close()
	}
	pub := whipPublish(t, n, room)
	viewer, tracks := whepWatch(t, n, room, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	<-tracks // the broadcast plays
	for _, c := range []*whipClient{viewer, pub} {
		if resp := doHTTP(t, "DELETE", n.base+c.location, "", "", "", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE %s: %d", c.location, resp.StatusCode)
		}
	}
	pub.close()
}
