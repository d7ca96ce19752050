// Package docs holds the documents the server serves as they are: the
// server API's OpenAPI description (openapi.json, served at
// /api/v1/openapi.json). It imports nothing of ours.
package docs

import _ "embed"

// OpenAPI is the OpenAPI 3.1 description of the server API (/api/v1/),
// docs/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte
