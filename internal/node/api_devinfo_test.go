package node

import (
	"net/http"
	"strings"
	"testing"
)

// Dev mode generates its secret at start, so halo-sfu token cannot sign
// for it: what make run prints carries an admin token, and the moderator's
// page with it, so that a new user can call the server API (docs/api.md)
// and open /admin/. The printed room token is not an admin's.
func TestDevInfo_PrintsAnAdminTokenTheAPITakes(t *testing.T) {
	n := startNode(t, nil)
	var out strings.Builder
	n.PrintDevInfo(&out)
	lines := strings.Split(out.String(), "\n")
	var admin, roomToken, page string
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "  admin token") && i+1 < len(lines):
			admin = strings.TrimSpace(lines[i+1])
		case strings.HasPrefix(l, "  token (room demo") && i+1 < len(lines):
			roomToken = strings.TrimSpace(lines[i+1])
		case strings.HasPrefix(l, "  moderators:"):
			page = strings.TrimSpace(strings.TrimPrefix(l, "  moderators:"))
		}
	}
	if admin == "" || roomToken == "" {
		t.Fatalf("no admin token or room token in:\n%s", out.String())
	}
	if want := "http://" + n.HTTPAddr() + "/admin/#token=" + admin; page != want {
		t.Errorf("moderators: %q, want %q", page, want)
	}
	if status, body := apiCall(t, n, "GET", "/api/v1/rooms?live=true", admin, ""); status != http.StatusOK {
		t.Errorf("the printed admin token, GET /api/v1/rooms: %d %s", status, body)
	}
	if status, _ := apiCall(t, n, "GET", "/api/v1/rooms", roomToken, ""); status != http.StatusForbidden {
		t.Errorf("the printed room token, GET /api/v1/rooms: %d, want 403", status)
	}
}
