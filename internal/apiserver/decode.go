package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// errEmptyBody is a request without the JSON body it needs.
var errEmptyBody = errors.New("the body is empty")

// decodeStrict decodes the request body as exactly one JSON value into v:
// unknown fields are errors, and so is anything but white space after the
// value (a request is never half-read: `{"replicas": 1} {"replicas": 50}`
// is refused, not taken as 1). The body is read to its end, so one over
// the limit fails with *http.MaxBytesError however it is padded.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errEmptyBody
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// decodeBody is decodeStrict with the API's errors: 413 for a body over the
// limit, 400 naming what was wanted for anything else.
func decodeBody(r *http.Request, v any, what string) error {
	err := decodeStrict(r, v)
	var mbe *http.MaxBytesError
	if err == nil || errors.As(err, &mbe) {
		return err
	}
	return invalid(fmt.Sprintf("request body is not a %s: %v", what, err))
}

// boolQuery reads query parameter name as strconv.ParseBool does (absent:
// false). Any other value is a 400: `?volumes=yes` must not quietly mean
// false, nor `?dry_run=yes` a real deploy.
func boolQuery(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid(fmt.Sprintf("query parameter %s must be true or false, got %q", name, v))
	}
	return b, nil
}
