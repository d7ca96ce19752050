package node

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
)

// What a WHIP broadcaster's page can know of its removal. WHIP has no
// events: the server ends the session with a DTLS close_notify, as a drain
// does, so the connection alone cannot tell a removal from a drain (after
// which the page must go live again). The live page keeps a hidden
// signalling connection with the same token beside its WHIP session (for
// the viewer count): a removal without a ban reaches it too, as removed
// with the moderator's reason, and its socket closes. That is what the
// page reads to stop instead of going live again.
func TestAPI_RemovedWHIPBroadcastersHiddenSocketIsTold(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const room = "stage"
	pub := whipPublish(t, n, room) // identity "whip"
	ended := watchClosed(pub.pc)
	monitor := n.dial(t, ctx)
	if _, err := monitor.Request(ctx, "join", map[string]any{"token": n.token(room, "whip", true, false),
		"hidden": true, "auto_subscribe": false}); err != nil {
		t.Fatalf("the page's hidden join: %v", err)
	}
	testutil.Eventually(t, "the broadcast is live", func() bool {
		var one apiRoomBody
		return apiGet(t, n, "/api/v1/rooms/"+room, n.apiAdmin(), &one) == 200 && len(one.Publishers) == 1 && len(one.Publishers[0].Tracks) == 2
	})

	res := moderate(t, n, "DELETE", "/api/v1/rooms/"+room+"/participants/whip?reason=off-topic", "")
	if res.Affected != 2 {
		t.Errorf("removal: %+v, want the WHIP session and the hidden socket (2)", res)
	}
	var rm struct {
		Reason    string  `json:"reason"`
		RoomEnded bool    `json:"room_ended"`
		BanUntil  *string `json:"ban_until"`
	}
	if err := json.Unmarshal(nextOfType(t, ctx, monitor, "removed"), &rm); err != nil || rm.Reason != "off-topic" || rm.RoomEnded || rm.BanUntil != nil {
		t.Errorf("the hidden socket's removed: %+v (%v), want reason off-topic, no room_ended, no ban", rm, err)
	}
	select {
	case <-monitor.Done():
	case <-ctx.Done():
		t.Error("the hidden socket stayed open after removed")
	}
	testutil.Eventually(t, "the WHIP session ends", ended.Load)
}
