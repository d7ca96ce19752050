package signaling

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// webFiles is the browser page: plain HTML, CSS and ES modules, no build
// step, nothing fetched from another origin. app.js routes between the views
// (live.js, watch.js); halo-client.js is the reusable client of
// docs/protocol.md and WHIP/WHEP that they are built on.
//
//go:embed web
var webFiles embed.FS

// webCSP allows the page to load only its own files, to open WebSockets and
// fetches, and to play MediaStreams. WebSockets and fetches may go to any
// host: a node redirects a client to another node (its region's, or the
// one a drain hands over to: a WHEP POST follows a 307 there), and nodes
// that join the cluster after the page was loaded must be reachable too.
const webCSP = "default-src 'self'; connect-src 'self' ws: wss: http: https:; media-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

// webAsset is one embedded file, read once at start.
type webAsset struct {
	body        []byte
	contentType string
	etag        string
}

// webContentTypes are the types of the files in web/ by extension; a file of
// any other type is not served, so nothing is ever sniffed.
var webContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

func loadWebAssets() map[string]webAsset {
	assets := map[string]webAsset{}
	err := fs.WalkDir(webFiles, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := webContentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := webFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		assets["/"+strings.TrimPrefix(p, "web/")] = webAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("signaling: embedded web page: " + err.Error()) // the embed is part of the binary
	}
	assets["/"] = assets["/index.html"]
	return assets
}

// routeWeb registers the embedded web page. It takes the catch-all pattern
// "/" (no method) so that it never conflicts with a more specific route: every
// other route wins over it.
func (s *Server) routeWeb(mux *http.ServeMux) {
	assets := loadWebAssets()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Content-Security-Policy", webCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// ServeContent answers If-None-Match with 304 and HEAD without a body.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
