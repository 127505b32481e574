package agent

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A drain answer's status comes before the drain ends (a client with a
// short header timeout still gets it), its outcome after.
func TestDrainAnswer(t *testing.T) {
	release := make(chan error)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteDrainAnswer(w, func() error { return <-release })
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 500 * time.Millisecond}}
	for _, want := range []error{nil, errors.New("node n3: drain timeout\nsecond line")} {
		got := make(chan error, 1)
		go func() {
			resp, err := hc.Post(srv.URL, "", nil)
			if err != nil {
				got <- err
				return
			}
			defer resp.Body.Close()
			got <- ReadDrainAnswer(resp.Body)
		}()
		time.Sleep(time.Second) // past the client's header timeout
		release <- want
		err := <-got
		switch {
		case want == nil && err != nil:
			t.Errorf("drained: got %v", err)
		case want != nil && (err == nil || err.Error() != "node n3: drain timeout; second line"):
			t.Errorf("failed: got %v, want the drain's error on one line", err)
		}
	}
	if err := ReadDrainAnswer(strings.NewReader("")); !errors.Is(err, ErrDrainAnswerCut) {
		t.Errorf("empty answer: got %v", err)
	}
}
