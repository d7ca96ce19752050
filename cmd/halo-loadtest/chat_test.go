package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halobuzz/live/config"
)

// Chat and reactions are checked as received, not only counted as sent:
// against a real node whose room budget is 2 messages a second (burst 4),
// 4 viewers each sending 4 chats and 4 reactions a second see every
// message come back to its sender (delivered) or answered
// room_rate_limited (refused), none lost; each delivered chat reaches every
// viewer of the room, and the other viewers of the room received every
// message delivered while they were there; and the table says so.
func TestRun_ChatIsCheckedAsReceived(t *testing.T) {
	srv := startServer(t, func(c *config.Config) {
		c.Limits.RoomMessagesPerSecond, c.Limits.RoomMessagesBurst = 2, 4
	})
	out := filepath.Join(t.TempDir(), "report.json")
	const viewers = 4
	code, stdout, stderr := runCmd(t, context.Background(), "--url", srv.wsURL, "--secret", srv.secret,
		"--room", "chat", "--viewers", "4", "--ramp", "1000", "--duration", "5s", "--bitrate", "200000",
		"--chat-per-minute", "240", "--reactions-per-minute", "240", "--json", out)
	t.Logf("run:\n%s%s", stdout, stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	m := readJSON(t, out).Messages
	t.Logf("messages %+v", m)
	sent := m.ChatsSent + m.ReactionsSent
	if m.ChatsSent == 0 || m.ReactionsSent == 0 || m.ChatsDelivered == 0 || m.ReactionsDelivered == 0 {
		t.Fatalf("nothing sent or delivered: %+v", m)
	}
	if m.Refused == 0 || m.RefusedByCode["room_rate_limited"] != m.Refused {
		t.Errorf("over the room's budget, no refusal counted as room_rate_limited: %+v", m)
	}
	if m.Lost != 0 || m.ChatsDelivered+m.ReactionsDelivered+m.Refused != sent {
		t.Errorf("%d sent = %d + %d delivered + %d refused, %d lost", sent, m.ChatsDelivered, m.ReactionsDelivered, m.Refused, m.Lost)
	}
	if m.ChatEvents != viewers*m.ChatsDelivered || m.ReactionEvents != viewers*m.ReactionsDelivered {
		t.Errorf("%d chat and %d reaction events for %d and %d delivered to %d viewers", m.ChatEvents, m.ReactionEvents,
			m.ChatsDelivered, m.ReactionsDelivered, viewers)
	}
	// The other viewers are judged on what they received: each delivered
	// message is expected at the other 3, but for those within a second
	// of a viewer's join or leave.
	delivered := m.ChatsDelivered + m.ReactionsDelivered
	if m.ToOthersExpected == 0 || m.ToOthersExpected > (viewers-1)*delivered ||
		m.ToOthersReceived != m.ToOthersExpected || m.ToOthersLost != 0 {
		t.Errorf("to others: %d expected (at most %d), %d received, %d lost", m.ToOthersExpected, (viewers-1)*delivered,
			m.ToOthersReceived, m.ToOthersLost)
	}
	if want := fmt.Sprintf("the other viewers of each room received %d of the %d messages", m.ToOthersReceived, m.ToOthersExpected); !strings.Contains(stdout, want) {
		t.Errorf("the table lacks %q", want)
	}
}
