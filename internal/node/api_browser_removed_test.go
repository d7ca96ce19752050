package node

import (
	"strings"
	"testing"
	"time"
)

// A broadcaster removed by a moderator without a ban is told so on the
// live page and stays off air (Start goes live again): over WHIP (the
// hidden socket's removed tells the page it was not a drain) and over the
// WebSocket protocol (removed before the socket closes). A drain still
// goes live again (TestBrowser_LivePageGoesLiveAgainWhenItsNodeDrains).
func TestBrowser_LivePageStopsWhenRemoved(t *testing.T) {
	for _, via := range []string{"whip", ""} {
		n := startNode(t, nil)
		room := "removed-" + map[string]string{"whip": "whip", "": "ws"}[via]
		b := newBrowser(t)
		goLive(t, b.ctx, n, room, via)
		moderate(t, n, "DELETE", "/api/v1/rooms/"+room+"/participants/host-"+room+"?reason=spam", "")
		type live struct{ State, Status string }
		got := waitPage(t, b.ctx, "the live page to say it was removed", `({state: window.haloState || '', status: document.getElementById('live-status').textContent})`,
			func(v live) bool { return v.State != "live" && v.State != "reconnecting" && v.State != "connecting" })
		if got.State != "error" || !strings.Contains(got.Status, "removed") || !strings.Contains(got.Status, "spam") {
			t.Errorf("via %q: the live page after its removal: %+v, want an error naming the removal and its reason", via, got)
		}
		// It stays off air: nobody publishes in the room a while later
		// (a page that took it for a drain was live again within 1 s).
		time.Sleep(3 * time.Second)
		var one apiRoomBody
		if st := apiGet(t, n, "/api/v1/rooms/"+room, n.apiAdmin(), &one); st == 200 && len(one.Publishers) > 0 {
			t.Errorf("via %q: the removed broadcaster is back: %+v", via, one.Publishers)
		}
		assertNoPageProblems(t, b)
	}
}
