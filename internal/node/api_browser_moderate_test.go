package node

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/halobuzz/live/signaling/auth"
)

// The moderator's page opened as a broadcaster's moderator opens it: with
// a moderate token alone (/admin/#token=..., no room in the address), it
// shows the token's room, not "forbidden: listing the rooms needs a token
// with the admin grant". Without the subscribe grant the tile cannot play
// (the moderate grant gives nothing on WHEP, docs/protocol.md) and the
// card says why. A refused token brings the form back with what was
// tried, and the form then works: a moderate token that may also watch
// (what halo-sfu token --moderate mints), room left empty, opens that
// room with its tile playing; a reload keeps it.
func TestBrowser_ModeratorPageTakesAModerateToken(t *testing.T) {
	n := startNode(t, nil)
	const room = "stage"
	mod, err := n.signer.Sign(auth.Claims{Identity: "mod-1", Room: room, Grants: auth.Grants{Moderate: true},
		ExpiresAt: time.Now().Add(time.Hour), IssuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := n.signer.Sign(auth.Claims{Identity: "mod-2", Room: room, Grants: auth.Grants{Moderate: true, Subscribe: true},
		ExpiresAt: time.Now().Add(time.Hour), IssuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// The broadcaster is the live page's fake camera (real VP8: the tile
	// decodes it).
	b := newBrowser(t)
	goLive(t, b.ctx, n, room, "")
	type page struct {
		Listed bool   `json:"listed"`
		Who    string `json:"who"`
		Login  bool   `json:"login"`
		Status string `json:"status"`
		Token  string `json:"token"`
		Frames int    `json:"frames"`
		Note   string `json:"note"`
	}
	const pageJS = `({listed: !!document.querySelector('[data-room="stage"]'), who: document.getElementById('who').textContent,
		login: !document.getElementById('login').hidden, status: document.getElementById('status').textContent,
		token: document.getElementById('token').value,
		frames: (() => { const v = document.querySelector('[data-room="stage"] video'); return v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : 0; })(),
		note: (() => { const p = document.querySelector('[data-room="stage"] .tile-note'); return p && !p.hidden ? p.textContent : ''; })()})`

	direct := b.tab("moderator")
	if err := chromedp.Do(direct, chromedp.Navigate(n.base+"/admin/#token="+mod)); err != nil {
		t.Fatal(err)
	}
	got := waitPage(t, direct, "the token's room listed, saying why it has no picture", pageJS, func(p page) bool { return p.Listed && p.Note != "" })
	if got.Who != "room "+room || got.Login || !strings.Contains(got.Note, "subscribe grant") {
		t.Errorf("opened with a moderate token: %+v, want room %s shown, no form, a note naming the subscribe grant", got, room)
	}
	screenshot(t, direct, "moderator-moderate-token.png")

	// A viewer's token is refused: the form comes back holding it.
	form := b.tab("form")
	viewer := n.token(room, "fan", false, true)
	if err := chromedp.Do(form, chromedp.Navigate(n.base+"/admin/#token="+viewer)); err != nil {
		t.Fatal(err)
	}
	got = waitPage(t, form, "the form back after a refused token", pageJS, func(p page) bool { return p.Login })
	if got.Token != viewer || got.Listed {
		t.Errorf("after a refused token: %+v, want the form holding the token tried", got)
	}
	// Typed as a moderator would: the token, the room left empty, Open.
	var typed bool
	if err := evalJSON(form, `(() => {
		document.getElementById('token').value = `+strconv.Quote(watcher)+`;
		document.getElementById('room').value = '';
		document.querySelector('#login button[type="submit"]').click();
		return true;
	})()`, &typed); err != nil {
		t.Fatal(err)
	}
	waitPage(t, form, "the moderate token's room listed from the form, its tile playing", pageJS, func(p page) bool {
		return p.Listed && !p.Login && p.Frames > 0 && p.Note == ""
	})
	screenshot(t, form, "moderator-moderate-form.png")
	if err := chromedp.Do(form, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitPage(t, form, "the room still listed after a reload", pageJS, func(p page) bool { return p.Listed && !p.Login })
	assertNoPageProblems(t, b)
}
