package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// removeStale removes every run whose owner process is gone. Runs are
// found by their names: directories under RunDir and DataDir, namespaces,
// links, iptables comments and cgroups that start with Prefix. The caller
// holds the lock of RunDir.
func removeStale(log *slog.Logger) error {
	live, err := liveRuns()
	if err != nil {
		return err
	}
	var errs error
	for _, run := range discoverRuns() {
		if _, ok := live[run]; ok {
			continue
		}
		log.Info("removing a stale testbed run", "run", run)
		errs = errors.Join(errs, removeRun(run, log))
	}
	return errs
}

// parseRun extracts the run from one of our names ("ruche-tb-abcd-1",
// "ruche-tb-brabcd", "ruche-tb-abcd"); "" when the name is not ours.
func parseRun(name string) string {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return ""
	}
	if r, ok := strings.CutPrefix(rest, "br"); ok && !strings.Contains(rest, "-") {
		rest = r
	}
	rest, _, _ = strings.Cut(rest, "-")
	if !validRun(rest) {
		return ""
	}
	return rest
}

// discoverRuns lists the runs that have anything left on the machine.
func discoverRuns() []string {
	var names []string
	for _, d := range []string{RunDir, DataDir} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			names = append(names, Prefix+e.Name())
		}
	}
	names = append(names, netnsNames()...)
	names = append(names, linkNames()...)
	for _, c := range []string{"FORWARD", "DOCKER-USER"} {
		for _, r := range ruleLines(c) {
			if i := strings.Index(r, Prefix); i >= 0 {
				names = append(names, strings.Trim(strings.Fields(r[i:])[0], `"`))
			}
		}
	}
	for _, root := range cgroupRoots() {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			names = append(names, e.Name())
		}
	}
	var runs []string
	for _, n := range names {
		if r := parseRun(n); r != "" && !slices.Contains(runs, r) {
			runs = append(runs, r)
		}
	}
	return runs
}

func netnsNames() []string {
	out, _ := command(context.Background(), "ip", "netns", "list")
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], Prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

func linkNames() []string {
	out, _ := command(context.Background(), "ip", "-j", "link")
	var links []struct {
		Name string `json:"ifname"`
	}
	json.Unmarshal([]byte(out), &links)
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Name, Prefix) {
			names = append(names, l.Name)
		}
	}
	return names
}

// linkExists tells whether a network interface of that name is on the
// host.
func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// ruleLines are the rules of a host iptables chain (none when it does not
// exist).
func ruleLines(chain string) []string {
	out, err := command(context.Background(), "iptables", "-w", "-S", chain)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(out), "\n")
}

// removeRun removes everything of one run: its processes, mounts,
// namespaces, links, rules, cgroups and directories. Errors are joined;
// it goes on after one.
func removeRun(run string, log *slog.Logger) error {
	var errs error
	runDir := filepath.Join(RunDir, run)
	nodeDirs, _ := filepath.Glob(filepath.Join(runDir, "node*"))

	// Processes started in the nodes, by pid file (pid and start time).
	for _, d := range nodeDirs {
		files, _ := filepath.Glob(filepath.Join(d, "procs", "*"))
		for _, f := range files {
			pid, _ := strconv.Atoi(filepath.Base(f))
			b, _ := os.ReadFile(f)
			start, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if pid > 0 && alive(pid, start) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// dockerd by its pid file, only when the pid is our dockerd.
	for _, d := range nodeDirs {
		stopDockerd(filepath.Join(d, "docker.pid"), 20*time.Second, log)
	}
	// What is left: processes in the namespaces and in the cgroups.
	nss := slices.DeleteFunc(netnsNames(), func(n string) bool { return parseRun(n) != run })
	for _, ns := range nss {
		killNamespace(ns)
	}
	for _, cg := range cgroupNames(run) {
		killCgroups(cg)
	}
	errs = errors.Join(errs, unmountUnder(runDir), unmountUnder(filepath.Join(DataDir, run)))
	ctx := context.Background()
	for _, ns := range nss {
		if _, err := command(ctx, "ip", "netns", "del", ns); err != nil {
			errs = errors.Join(errs, err)
		}
	}
	for _, l := range linkNames() {
		if parseRun(l) == run {
			// A veth whose peer was in a namespace deleted above goes
			// away with it, asynchronously: it may vanish between the
			// listing and the delete. Only a link still there is an error.
			if _, err := command(ctx, "ip", "link", "del", l); err != nil && linkExists(l) {
				errs = errors.Join(errs, err)
			}
		}
	}
	errs = errors.Join(errs, removeRules(ruleComment(run)))
	for _, cg := range cgroupNames(run) {
		errs = errors.Join(errs, removeCgroup(cg))
	}
	for _, d := range []string{runDir, filepath.Join(DataDir, run)} {
		if err := os.RemoveAll(d); err != nil {
			errs = errors.Join(errs, err)
		}
	}
	if errs != nil {
		return fmt.Errorf("testbed: remove run %s: %w", run, errs)
	}
	return nil
}

// stopDockerd stops the dockerd of a pid file if its command line is a
// dockerd with that --pidfile: SIGTERM, then SIGKILL after timeout.
func stopDockerd(pidFile string, timeout time.Duration, log *slog.Logger) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	args := procCmdline(pid)
	i := slices.Index(args, "--pidfile")
	if len(args) == 0 || filepath.Base(args[0]) != "dockerd" || i < 0 || i+1 >= len(args) || args[i+1] != pidFile {
		return
	}
	log.Info("stopping a stale dockerd", "pid", pid)
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// killNamespace SIGKILLs every process in network namespace ns (ours:
// the testbed made it) and waits a little for them to go.
func killNamespace(ns string) {
	var st syscall.Stat_t
	if err := syscall.Stat(netnsPath(ns), &st); err != nil {
		return
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	match := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && l == want {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	killUntilGone(match)
}

// killUntilGone SIGKILLs the pids match returns until it returns none or
// five seconds passed.
// Killed processes are then waited for until /proc forgets them: a zombie
// not yet reaped by init still looks alive to kill(pid, 0), and dockerd
// would wait for a dead containerd of that pid.
func killUntilGone(match func() []int) {
	deadline := time.Now().Add(5 * time.Second)
	var killed []int
	for {
		pids := match()
		if len(pids) == 0 || time.Now().After(deadline) {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
			killed = append(killed, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range killed {
		for time.Now().Before(deadline) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// cgroupRoots are the mounted cgroup hierarchies (v1: one per
// controller; v2: the one tree).
func cgroupRoots() []string {
	var roots []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil {
		roots = append(roots, "/sys/fs/cgroup")
	}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		d := filepath.Join("/sys/fs/cgroup", e.Name())
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil {
			roots = append(roots, d)
		}
	}
	return roots
}

// cgroupNames are the top-level cgroups of a run (the nodes' cgroup
// parents, named like their namespaces).
func cgroupNames(run string) []string {
	var names []string
	for _, root := range cgroupRoots() {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && parseRun(e.Name()) == run && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	return names
}

// killCgroups SIGKILLs the processes in cgroup name (and below) of every
// hierarchy.
func killCgroups(name string) {
	killUntilGone(func() []int {
		var pids []int
		for _, root := range cgroupRoots() {
			filepath.WalkDir(filepath.Join(root, name), func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
						pids = append(pids, pid)
					}
				}
				return nil
			})
		}
		return pids
	})
}

// removeCgroup removes cgroup name (children first) from every hierarchy.
func removeCgroup(name string) error {
	var errs error
	for _, root := range cgroupRoots() {
		top := filepath.Join(root, name)
		var dirs []string
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, d := range dirs {
			var err error
			for range 20 { // a cgroup is busy for a moment after its last process died
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				errs = errors.Join(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errs
}

// removeRules deletes the host's FORWARD and DOCKER-USER rules carrying
// comment.
func removeRules(comment string) error {
	var errs error
	for _, chain := range []string{"FORWARD", "DOCKER-USER"} {
		for _, r := range ruleLines(chain) {
			f := strings.Fields(r)
			if len(f) < 2 || f[0] != "-A" || !slices.ContainsFunc(f, func(s string) bool { return strings.Trim(s, `"`) == comment }) {
				continue
			}
			for i := range f {
				f[i] = strings.Trim(f[i], `"`)
			}
			f[0] = "-D"
			if _, err := command(context.Background(), "iptables", append([]string{"-w"}, f...)...); err != nil {
				errs = errors.Join(errs, err)
			}
		}
	}
	return errs
}

// unmountUnder unmounts every mount point at or under dir, deepest
// first (dockerd leaves overlay and namespace mounts when it is killed).
func unmountUnder(dir string) error {
	var last error
	for range 5 {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return nil
		}
		slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
		last = nil
		for _, mp := range mps {
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				last = fmt.Errorf("unmount %s: %w", mp, err)
			}
		}
	}
	if mps := mountsUnder(dir); len(mps) > 0 {
		return errors.Join(last, fmt.Errorf("still mounted: %s", strings.Join(mps, ", ")))
	}
	return nil
}

// mountsUnder lists the mount points at or under dir.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
