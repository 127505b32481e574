package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// apiError is an error with its HTTP mapping.
type apiError struct {
	status  int
	code    string
	msg     string
	details []string
}

func (e *apiError) Error() string { return e.msg }

func invalid(msg string, details ...string) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid", msg: msg, details: details}
}

func notFound(msg string) error {
	return &apiError{status: http.StatusNotFound, code: "not_found", msg: msg}
}

func conflict(msg string) error {
	return &apiError{status: http.StatusConflict, code: "conflict", msg: msg}
}

// isInternal reports whether err is not the client's fault.
func isInternal(err error) bool {
	var ae *apiError
	var mbe *http.MaxBytesError
	var ve *client.ValidationError
	return !errors.As(err, &ae) && !errors.As(err, &mbe) && !errors.As(err, &ve) &&
		!errors.Is(err, store.ErrConflict)
}

func toAPIError(err error) *client.Error {
	var ae *apiError
	var mbe *http.MaxBytesError
	var ve *client.ValidationError
	switch {
	case errors.As(err, &ae):
		return &client.Error{Status: ae.status, Code: ae.code, Message: ae.msg, Details: ae.details}
	case errors.As(err, &ve):
		msg := "invalid project"
		if len(ve.Problems) == 1 {
			msg = ve.Problems[0]
		}
		return &client.Error{Status: http.StatusBadRequest, Code: "invalid", Message: msg, Details: ve.Problems}
	case errors.As(err, &mbe):
		return &client.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "request body larger than the limit of " + itoa(mbe.Limit) + " bytes"}
	case errors.Is(err, store.ErrConflict):
		return &client.Error{Status: http.StatusConflict, Code: "conflict", Message: "the state changed while the request was applied; retry"}
	case errors.Is(err, store.ErrFull):
		msg := err.Error()
		if i := strings.Index(msg, store.ErrFull.Error()); i > 0 {
			msg = msg[i:] // from "store is full: ..."
		}
		return &client.Error{Status: http.StatusInsufficientStorage, Code: "store_full", Message: msg}
	}
	return &client.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error: " + err.Error()}
}

func writeError(w http.ResponseWriter, err error) {
	e := toAPIError(err)
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
