package signaling

import (
	"bytes"
	"net/http"
	"time"
)

// routeAdminPage serves the moderator's page at /admin/ (signaling/web/
// admin.html; its script and style are served with the rest of the web
// page). The page asks for a token and talks to the server API.
func (s *Server) routeAdminPage(mux *http.ServeMux) {
	page := loadWebAssets()["/admin.html"]
	mux.HandleFunc("GET /admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", page.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", page.etag)
		h.Set("Content-Security-Policy", webCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(page.body))
	})
	mux.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/", http.StatusMovedPermanently)
	})
}
