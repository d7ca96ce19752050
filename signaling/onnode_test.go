package signaling

import "testing"

// A redirect (region routing, a full node) names the same path and query
// on the other node, under its public URL's own path prefix.
func TestOnNode_SamePathOnTheOtherNode(t *testing.T) {
	for _, c := range []struct{ base, path, query, want string }{
		{"https://in-1.example.com", "/whep/show", "region=in", "https://in-1.example.com/whep/show?region=in"},
		{"https://example.com/eu-2/", "/ws", "", "https://example.com/eu-2/ws"},
		{"", "/ws", "", ""},
		{"not a url", "/ws", "", ""},
	} {
		if got := onNode(c.base, c.path, c.query); got != c.want {
			t.Errorf("onNode(%q, %q, %q) = %q, want %q", c.base, c.path, c.query, got, c.want)
		}
	}
}
