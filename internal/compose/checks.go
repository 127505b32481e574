package compose

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/format"
	"github.com/compose-spec/compose-go/v2/paths"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ruche-platform/ruche/client"
	"gopkg.in/yaml.v3"
)

// Value checks, called by the walker through rules. Each returns whether
// the walk goes on below the value.

// needsFilesReason is why a file reference cannot work in LoadBytes.
const needsFilesReason = "not available when the compose file is sent to the API: it names a file on the client; deploy with ruche deploy -f, which reads it"

func checkProjectName(w *walker, e entry) bool {
	if s, ok := w.interp(e.value); ok {
		w.name = s
	}
	return false
}

func checkVersion(w *walker, e entry) bool {
	w.warn(e, "the version key is obsolete and ignored")
	w.prune(e) // compose-go would log the same warning on its own
	return false
}

func checkNeedsFiles(w *walker, e entry) bool {
	if w.mode == noFiles {
		w.problem(e, "%s", needsFilesReason)
		w.prune(e)
		return false
	}
	return true
}

// checkEnvFiles checks env_file and label_file. In LoadBytes they name
// the client's files. In Load each file must be there, unless an env file
// says required: false: compose-go would stop at the first one missing,
// with no line to show, and every missing file is reported here instead.
func checkEnvFiles(w *walker, e entry) bool {
	if !checkNeedsFiles(w, e) {
		return false
	}
	kind := "env file"
	if strings.HasSuffix(e.pattern, ".label_file") {
		kind = "label file"
	}
	switch e.value.Kind {
	case yaml.ScalarNode:
		w.checkEnvFile(e, kind, e.value, true)
	case yaml.SequenceNode:
		for _, ie := range w.listEntries(e) {
			if ie.value.Kind != yaml.MappingNode {
				w.checkEnvFile(ie, kind, ie.value, true)
				continue
			}
			p, ok := child(ie.value, "path", ie.path)
			if !ok {
				continue // compose-go's schema reports it
			}
			required := true
			if r, ok := child(ie.value, "required", ie.path); ok {
				if s, ok := w.interp(r.value); ok {
					required, _ = strconv.ParseBool(s)
				}
			}
			w.checkEnvFile(ie, kind, p.value, required)
		}
	}
	return true
}

// checkEnvFile reports, and prunes, entry e when the file it names at
// node file is missing (and required) or is a directory. The path is
// resolved as compose-go resolves it: ~ is the home directory, a relative
// path is under the working directory.
func (w *walker) checkEnvFile(e entry, kind string, file *yaml.Node, required bool) {
	p, ok := w.interp(file)
	if !ok || p == "" {
		return // compose-go reports it
	}
	if p = paths.ExpandUser(p); !filepath.IsAbs(p) {
		p = filepath.Join(w.dir, p)
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) && required:
		w.problem(e, "%s %s not found", kind, p)
	case err == nil && fi.IsDir():
		w.problem(e, "%s %s is a directory", kind, p)
	default:
		return
	}
	w.prune(e)
}

// listEntries returns the items of the list at e, each recorded with
// its line.
func (w *walker) listEntries(e entry) []entry {
	var out []entry
	for i, item := range e.value.Content {
		ie := entry{parent: e.value, node: item, value: resolve(item), path: fmt.Sprintf("%s[%d]", e.path, i), line: item.Line}
		w.index[ie.path] = loc{w.file, ie.line}
		out = append(out, ie)
	}
	return out
}

// checkDependsOn records where each dependency of the list form was
// written, as "services.web.depends_on.<service>" like the keys of the
// mapping form, so that a problem about it is at its own line rather
// than at depends_on:'s.
func checkDependsOn(w *walker, e entry) bool {
	if e.value.Kind == yaml.SequenceNode {
		for _, item := range e.value.Content {
			if s, ok := w.interp(resolve(item)); ok {
				w.index[e.path+"."+s] = loc{w.file, item.Line}
			}
		}
	}
	return true
}

// checkItems records where each item of a list of strings was written,
// so that a problem about one item is at its own line.
func checkItems(w *walker, e entry) bool {
	if e.value.Kind == yaml.SequenceNode {
		w.list(e.value, e.path)
		w.listEntries(e)
	}
	return true
}

// child returns the value of key in mapping m, with its entry.
func child(m *yaml.Node, key, path string) (entry, bool) {
	if m.Kind != yaml.MappingNode {
		return entry{}, false
	}
	for _, p := range pairs(m) {
		if p.key.Value == key {
			return entry{parent: p.owner, node: p.key, value: resolve(p.value), path: path + "." + key, line: p.key.Line}, true
		}
	}
	return entry{}, false
}

// checkVolumeDecl allows name: on external volumes only: ruche names the
// volumes it creates itself.
func checkVolumeDecl(w *walker, e entry) bool {
	name, ok := child(e.value, "name", e.path)
	if !ok {
		return true
	}
	external := false
	if x, ok := child(e.value, "external", e.path); ok {
		if x.value.Kind == yaml.MappingNode {
			external = true // the deprecated external: {name: ...}, refused on its own
		} else if s, ok := w.interp(x.value); ok {
			external, _ = strconv.ParseBool(s)
		}
	}
	if !external {
		w.refuse(name, "ruche names the volumes it creates <project>_<volume>; to use an existing Docker volume, add external: true")
	}
	return true
}

func checkNetworkDriver(w *walker, e entry) bool {
	if s, ok := w.interp(e.value); ok && s != "bridge" && s != "" {
		w.refuse(e, fmt.Sprintf("ruche builds each project's network itself, spanning every node; leave driver %q out", s))
	}
	return false
}

// parseRestart maps compose's restart: onto a restart policy condition and
// a maximum number of attempts.
func parseRestart(s string) (condition string, maxAttempts int, err error) {
	switch s {
	case types.RestartPolicyNo:
		return client.RestartNone, 0, nil
	case types.RestartPolicyAlways, types.RestartPolicyUnlessStopped:
		return client.RestartAny, 0, nil
	case types.RestartPolicyOnFailure:
		return client.RestartOnFailure, 0, nil
	}
	if n, ok := strings.CutPrefix(s, types.RestartPolicyOnFailure+":"); ok {
		if max, err := strconv.Atoi(n); err == nil && max >= 0 {
			return client.RestartOnFailure, max, nil
		}
	}
	return "", 0, fmt.Errorf("%q is not no, always, on-failure, on-failure:<max-retries> or unless-stopped", s)
}

func checkRestart(w *walker, e entry) bool {
	s, ok := w.interp(e.value)
	if !ok {
		return false
	}
	if _, _, err := parseRestart(s); err != nil {
		w.problem(e, "%v", err)
		w.prune(e)
	}
	return false
}

func checkPullPolicy(w *walker, e entry) bool {
	s, ok := w.interp(e.value)
	if !ok {
		return false
	}
	switch s {
	case types.PullPolicyMissing, types.PullPolicyIfNotPresent:
		// what ruche does anyway
	default:
		w.refuse(e, fmt.Sprintf("pull_policy %s: ruche uses a locally present image and pulls a missing one, as pull_policy: missing does", s))
	}
	return false
}

// checkReplicas refuses a count beyond int64, which compose-go would turn
// into a negative number ("must not be negative, got -9223372036854775808").
// Counts that fit are client.ProjectSpec.Validate's.
func checkReplicas(w *walker, e entry) bool {
	s, ok := w.interp(e.value)
	if !ok {
		return false
	}
	if _, err := strconv.ParseInt(s, 10, 64); errors.Is(err, strconv.ErrRange) {
		if strings.HasPrefix(s, "-") {
			w.problem(e, "must not be negative, got %s", s)
		} else {
			w.problem(e, "%s is more than the %d a service may have", s, client.MaxReplicas)
		}
		w.prune(e)
	}
	return false
}

func checkDeployMode(w *walker, e entry) bool {
	s, ok := w.interp(e.value)
	if !ok {
		return false
	}
	switch s {
	case "replicated":
	case "global":
		w.refuse(e, "global mode is not supported yet: set deploy.replicas and x-ruche: {spread: max_availability} to put replicas on distinct nodes")
	default:
		w.refuse(e, fmt.Sprintf("mode %s is not supported: ruche runs replicated services", s))
	}
	return false
}

const portRangeReason = "published port ranges are not supported: publish one host port per container port"

// checkPort checks one item of ports:, in short ("8080:80/udp") or long
// syntax.
func checkPort(w *walker, e entry) bool {
	if e.value.Kind == yaml.MappingNode {
		if pub, ok := child(e.value, "published", e.path); ok {
			if s, ok := w.interp(pub.value); ok && strings.Contains(s, "-") {
				w.refuse(e, portRangeReason)
				return false
			}
		}
		return true
	}
	s, ok := w.interp(e.value)
	if !ok {
		return false
	}
	ports, err := types.ParsePortConfig(s)
	if err != nil {
		w.problem(e, "invalid port %q: %v", s, err)
		w.prune(e)
		return false
	}
	for _, p := range ports {
		if strings.Contains(p.Published, "-") {
			w.refuse(e, portRangeReason)
			return false
		}
	}
	return false
}

func checkPortMode(w *walker, e entry) bool {
	if s, ok := w.interp(e.value); ok && s != "host" {
		w.refuse(e, fmt.Sprintf("mode %s: ruche publishes a port on the node that runs the replica, as mode: host does; route HTTP with labels rather than a routing mesh", s))
	}
	return false
}

// checkVolume checks one item of volumes:, in short
// ("data:/var/lib/data:ro,z") or long syntax.
func checkVolume(w *walker, e entry) bool {
	if e.value.Kind == yaml.MappingNode {
		typ := ""
		if t, ok := child(e.value, "type", e.path); ok {
			typ, _ = w.interp(t.value)
		}
		switch typ {
		case types.VolumeTypeVolume, types.VolumeTypeTmpfs, "":
		case types.VolumeTypeBind:
			if src, ok := child(e.value, "source", e.path); ok {
				if s, ok := w.interp(src.value); ok && !w.bindSourceOK(s) {
					w.problem(src, "relative bind source %q is %s", s, needsFilesReason)
					w.prune(e)
					return false
				}
			}
		default:
			w.refuse(e, fmt.Sprintf("mount type %s: use volume, bind or tmpfs", typ))
			return false
		}
		return true
	}
	s, ok := w.interp(e.value)
	if !ok {
		return false
	}
	vol, err := format.ParseVolume(s)
	if err != nil {
		w.problem(e, "invalid volume %q: %v", s, err)
		w.prune(e)
		return false
	}
	bad := false
	if vol.Type == types.VolumeTypeBind && !w.bindSourceOK(vol.Source) {
		w.problem(e, "relative bind source %q is %s", vol.Source, needsFilesReason)
		bad = true
	}
	if parts := strings.Split(s, ":"); len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro", "rw":
			case types.SELinuxShared, types.SELinuxPrivate:
				w.warn(e, "SELinux option :%s dropped: ruche does not relabel mounts", o)
			case "cached", "delegated", "consistent":
				w.warn(e, "option :%s dropped: it has no effect on Linux", o)
			case "nocopy":
				w.problem(e, "not supported by ruche (nocopy: a new volume is filled from the image)")
				bad = true
			case types.PropagationRPrivate, types.PropagationPrivate, types.PropagationRShared,
				types.PropagationShared, types.PropagationRSlave, types.PropagationSlave:
				w.problem(e, "not supported by ruche (mount propagation %s)", o)
				bad = true
			default:
				w.problem(e, "unknown volume option %q (ro, rw, z and Z are understood)", o)
				bad = true
			}
		}
	}
	if bad {
		w.prune(e)
	}
	return false
}

// bindSourceOK says whether a bind source can be used in this mode: on the
// API server only an absolute path on the node makes sense.
func (w *walker) bindSourceOK(src string) bool {
	return w.mode == readFiles || filepath.IsAbs(src)
}

func checkConsistency(w *walker, e entry) bool {
	w.warn(e, "consistency dropped: it has no effect on Linux")
	return false
}

func checkSELinux(w *walker, e entry) bool {
	w.warn(e, "SELinux option dropped: ruche does not relabel mounts")
	return false
}

// checkTmpfs checks tmpfs:, a path or a list of paths.
func checkTmpfs(w *walker, e entry) bool {
	one := func(e entry) {
		if s, ok := w.interp(e.value); ok && strings.Contains(s, ":") {
			w.refuse(e, "tmpfs options are not supported yet: write the path alone")
		}
	}
	switch e.value.Kind {
	case yaml.ScalarNode:
		one(e)
	case yaml.SequenceNode:
		w.list(e.value, e.path)
		for _, ie := range w.listEntries(e) {
			one(ie)
		}
	}
	return false
}

// checkLabels records where each label was written, as
// "services.web.labels.<key>" in both syntaxes (mapping and list of
// key=value), so that messages about a label (routes, Traefik) name it and
// its line.
func checkLabels(w *walker, e entry) bool {
	switch e.value.Kind {
	case yaml.MappingNode:
		for _, p := range pairs(e.value) {
			w.index[e.path+"."+p.key.Value] = loc{w.file, p.key.Line}
		}
	case yaml.SequenceNode:
		for _, item := range e.value.Content {
			if item = resolve(item); item.Kind == yaml.ScalarNode {
				key, _, _ := strings.Cut(item.Value, "=")
				w.index[e.path+"."+key] = loc{w.file, item.Line}
			}
		}
	}
	return false
}
