package admin

import (
	"bytes"
	"net/http"
)

type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func newRecorder() *recorder { return &recorder{h: http.Header{}, code: 200} }

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }

func httpReq(method, path string) *http.Request {
	req, _ := http.NewRequest(method, path, nil)
	return req
}
