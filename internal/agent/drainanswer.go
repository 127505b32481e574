package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// A drain request (the agent asking the managers, a manager asking a
// node's proxy) can last as long as the proxies' drain timeout, longer
// than a client's header timeout. So its answer is 200 at once, and its
// outcome the last line: "drained", or "error: <why>".

const drainDone = "drained"

// ErrDrainAnswerCut: a drain answer ended before its outcome.
var ErrDrainAnswerCut = errors.New("drain answer cut before its end")

// WriteDrainAnswer sends the status at once, runs drain, and ends the
// answer with its outcome.
func WriteDrainAnswer(w http.ResponseWriter, drain func() error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	if err := drain(); err != nil {
		fmt.Fprintf(w, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	fmt.Fprintln(w, drainDone)
}

// ReadDrainAnswer reads an answer of WriteDrainAnswer to its end: nil when
// it says drained, the remote error, or an error wrapping
// ErrDrainAnswerCut.
func ReadDrainAnswer(r io.Reader) error {
	var last string
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	switch {
	case last == drainDone:
		return nil
	case strings.HasPrefix(last, "error: "):
		return errors.New(strings.TrimPrefix(last, "error: "))
	case sc.Err() != nil:
		return fmt.Errorf("%w: %w", ErrDrainAnswerCut, sc.Err())
	default:
		return ErrDrainAnswerCut
	}
}
