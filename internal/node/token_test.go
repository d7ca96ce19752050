package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// The load tester mints its tokens with a JWT library, apart from the
// server's code; the server accepts them, and refuses one signed with
// another secret.
func TestLoadtestTokens_AreAcceptedByTheServer(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		secret string
		ok     bool
	}{{n.cfg.Auth.Secret, true}, {n.cfg.Auth.Secret + "x", false}} {
		tok, err := loadtest.MintToken(tc.secret, loadtest.TokenClaims{Identity: "lt", Room: "tok", Grants: loadtest.Grants{Subscribe: true}})
		if err != nil {
			t.Fatal(err)
		}
		c := n.dial(t, ctx)
		_, err = c.Request(ctx, "join", loadtest.JoinRequest{Token: tok})
		if (err == nil) != tc.ok {
			t.Fatalf("join with a token under the %s secret: %v", map[bool]string{true: "server's", false: "wrong"}[tc.ok], err)
		}
	}
}
