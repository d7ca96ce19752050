// Package apicheck checks the server API's answers against its OpenAPI
// document (docs/openapi.json) with github.com/getkin/kin-openapi: the
// tests of signaling and of the node call it on every response they get,
// so the document and the server cannot drift apart. Only tests import it.
package apicheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/halobuzz/live/docs"
)

// Checker validates requests and responses against the document.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
}

// New loads and validates the document.
func New() (*Checker, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("apicheck: load docs/openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("apicheck: docs/openapi.json is not valid OpenAPI: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("apicheck: router: %w", err)
	}
	return &Checker{doc: doc, router: router}, nil
}

// Check validates a call: the request (method, path, parameters, body) is
// one the document describes, and the response (its status among the
// operation's, its content type and body against the schema) is what the
// document says. body is the request's body ("" for none).
func (c *Checker) Check(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("apicheck: %s %s is not in the document: %w", req.Method, req.URL.Path, err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	r2 := req.Clone(context.Background())
	r2.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{Request: r2, PathParams: params, Route: route, Options: opts}
	if status < 400 {
		// Requests the server refused may break the document on purpose
		// (the tests of bad input); those it accepted must not.
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return fmt.Errorf("apicheck: request %s %s: %w", req.Method, req.URL.Path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("apicheck: response %d to %s %s: %w", status, req.Method, req.URL.Path, err)
	}
	return nil
}
