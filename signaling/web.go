package signaling

import "net/http"

// routeWeb registers the embedded web page.
func (s *Server) routeWeb(mux *http.ServeMux) {}
