package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// owner is written in a run's directory when it starts: a run whose owner
// process is gone (pid dead or reused) is stale.
type owner struct {
	PID   int          `json:"pid"`
	Start uint64       `json:"start"` // the process start time, /proc/PID/stat field 22
	Block netip.Prefix `json:"block"`
}

// claim takes the lock of RunDir, removes dead runs, picks this run's
// identifier and address block, and records the claim.
func (tb *Testbed) claim(ctx context.Context) error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	unlock, err := lockDir(RunDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := removeStale(tb.log); err != nil {
		return err
	}
	live, err := liveRuns()
	if err != nil {
		return err
	}
	host, err := hostPrefixes()
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	var used []netip.Prefix
	for _, o := range live {
		used = append(used, o.Block)
	}
	block, err := pickBlock(host, used)
	if err != nil {
		return err
	}
	for {
		var b [2]byte
		rand.Read(b[:])
		tb.run = hex.EncodeToString(b[:])
		if _, ok := live[tb.run]; !ok {
			break
		}
	}
	tb.plan = plan{Block: block}
	start, err := procStart(os.Getpid())
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	data, _ := json.Marshal(owner{PID: os.Getpid(), Start: start, Block: block})
	if err := os.MkdirAll(tb.runDir(), 0o755); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tb.runDir(), "owner"), data, 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	tb.log.Info("testbed run", "run", tb.run, "block", block)
	return nil
}

// lockDir takes an exclusive flock on dir/.lock.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testbed: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("testbed: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// procStart reads a process's start time (clock ticks since boot).
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22 overall
}

// procCmdline reads a process's arguments.
func procCmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// alive says whether pid is the process that started at start.
func alive(pid int, start uint64) bool {
	s, err := procStart(pid)
	return err == nil && s == start
}

// liveRuns reads the owners of the runs whose owner process lives.
func liveRuns() (map[string]owner, error) {
	out := map[string]owner{}
	ents, err := os.ReadDir(RunDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	for _, e := range ents {
		if !validRun(e.Name()) {
			continue
		}
		if o, ok := readOwner(e.Name()); ok && alive(o.PID, o.Start) {
			out[e.Name()] = o
		}
	}
	return out, nil
}

func readOwner(run string) (owner, bool) {
	var o owner
	b, err := os.ReadFile(filepath.Join(RunDir, run, "owner"))
	if err != nil || json.Unmarshal(b, &o) != nil {
		return o, false
	}
	return o, true
}

// validRun says whether s has the form of a run identifier.
func validRun(s string) bool {
	if len(s) != 4 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// command runs a program and returns its standard output; an error
// carries its standard error.
func command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
