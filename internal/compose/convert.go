package compose

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ruche-platform/ruche/client"
)

// convert maps compose-go's project onto ruche's spec. What the walker
// refused has been pruned already; what is left is honoured here.
func (l *load) convert(p *types.Project) *client.ProjectSpec {
	spec := &client.ProjectSpec{Services: map[string]client.ServiceSpec{}}
	labels := map[string]map[string]string{}
	for name, s := range p.Services {
		labels[name] = s.Labels
	}
	tp := readTraefik(labels)
	for _, name := range sortedKeys(p.Services) {
		spec.Services[name] = l.service(name, p.Services[name], tp)
	}
	tp.finish()
	for _, m := range tp.msgs {
		at := "services." + m.service + ".labels." + m.label
		if m.warn {
			l.warnAt(at, "%s", m.text)
		} else {
			l.problemAt(at, "%s", m.text)
		}
	}
	for name, v := range p.Volumes {
		if spec.Volumes == nil {
			spec.Volumes = map[string]client.VolumeSpec{}
		}
		vs := client.VolumeSpec{Name: name, Driver: v.Driver, DriverOpts: mapOrNil(v.DriverOpts), Labels: mapOrNil(v.Labels), External: bool(v.External)}
		if vs.External && v.Name != "" {
			vs.Name = v.Name // an existing Docker volume, named as written
		}
		spec.Volumes[name] = vs
	}
	for name, n := range p.Networks {
		if spec.Networks == nil {
			spec.Networks = map[string]client.NetworkSpec{}
		}
		spec.Networks[name] = client.NetworkSpec{Name: name, Internal: n.Internal, Labels: mapOrNil(n.Labels)}
	}
	for name, s := range p.Secrets {
		if spec.Secrets == nil {
			spec.Secrets = map[string]client.SecretSpec{}
		}
		// On a problem, the secret is still declared, so its references
		// do not add problems of their own.
		data := l.fileContent("secrets."+name, s.File, s.Environment, s.Content, false)
		spec.Secrets[name] = client.SecretSpec{Name: name, Data: data}
	}
	for name, c := range p.Configs {
		if spec.Configs == nil {
			spec.Configs = map[string]client.ConfigSpec{}
		}
		data := l.fileContent("configs."+name, c.File, c.Environment, c.Content, true)
		spec.Configs[name] = client.ConfigSpec{Name: name, Data: data}
	}
	l.flushWarnings()
	return spec
}

// problemAt records a problem found while converting, at the line of path.
func (l *load) problemAt(path, format string, args ...any) {
	l.problems = append(l.problems, l.locate(path+": "+fmt.Sprintf(format, args...)))
}

// warnAt records a warning found while converting, at the line of path.
func (l *load) warnAt(path, format string, args ...any) {
	l.warnings = append(l.warnings, l.locate(path+": "+fmt.Sprintf(format, args...)))
}

// flushWarnings hands the warnings found while converting to Options.Warn,
// in the order of the files.
func (l *load) flushWarnings() {
	if l.warn == nil {
		return
	}
	names := make([]string, len(l.inputs))
	for i, in := range l.inputs {
		names[i] = in.name
	}
	for _, w := range sortProblems(l.warnings, names) {
		l.warn(w)
	}
	l.warnings = nil
}

// fileContent reads a secret's or config's content from its source.
func (l *load) fileContent(path, file, envName, content string, contentAllowed bool) []byte {
	switch {
	case file != "":
		if l.mode == noFiles { // pruned by the walker; kept as a safety net
			l.problemAt(path+".file", "%s", needsFilesReason)
			return nil
		}
		data, err := os.ReadFile(file)
		if err != nil {
			l.problemAt(path+".file", "cannot read it: %v", err)
		}
		return data
	case envName != "":
		v, ok := l.env[envName]
		if !ok {
			l.problemAt(path+".environment", "variable %s is not set", envName)
		}
		return []byte(v)
	case contentAllowed:
		return []byte(content)
	}
	l.problemAt(path, "no content: set file: or environment:")
	return nil
}

func mapOrNil[M ~map[string]string](m M) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (l *load) service(name string, s types.ServiceConfig, tp *traefikProject) client.ServiceSpec {
	path := "services." + name
	out := client.ServiceSpec{
		Name:       name,
		Image:      s.Image,
		Command:    []string(s.Command),
		Entrypoint: []string(s.Entrypoint),
		Labels:     routeLabels(s.Labels),
		User:       s.User,
		WorkingDir: s.WorkingDir,
		Hostname:   s.Hostname,
		TTY:        s.Tty,
		StdinOpen:  s.StdinOpen,
		Init:       s.Init != nil && *s.Init,
		ReadOnly:   s.ReadOnly,
		CapAdd:     s.CapAdd,
		CapDrop:    s.CapDrop,
		StopSignal: s.StopSignal,
		Replicas:   1,
	}
	if len(out.Command) == 0 {
		out.Command = nil
	}
	if len(out.Entrypoint) == 0 {
		out.Entrypoint = nil
	}
	for k, v := range s.Environment {
		if v == nil {
			continue // "- NAME" with NAME unset: not set in the container, as in compose
		}
		if out.Environment == nil {
			out.Environment = map[string]string{}
		}
		out.Environment[k] = *v
	}
	if len(s.ExtraHosts) > 0 {
		out.ExtraHosts = s.ExtraHosts.AsList(":")
		sort.Strings(out.ExtraHosts)
	}
	if s.StopGracePeriod != nil {
		out.StopGracePeriod = client.Duration(*s.StopGracePeriod)
	}
	out.Ports = l.ports(path, s.Ports)
	l.renameItems(path+".ports", 0, path+".ports", len(out.Ports), len(out.Ports) == len(s.Ports))
	out.Mounts = l.mounts(s)
	l.renameItems(path+".volumes", 0, path+".volumes", len(s.Volumes), true)
	l.renameItems(path+".volumes", len(s.Volumes), path+".tmpfs", len(s.Tmpfs), true)
	out.Healthcheck = healthcheck(s.HealthCheck)
	for dep, d := range s.DependsOn {
		if out.DependsOn == nil {
			out.DependsOn = map[string]client.DependencySpec{}
		}
		out.DependsOn[dep] = client.DependencySpec{Condition: d.Condition, Required: d.Required}
	}
	for _, r := range s.Secrets {
		out.Secrets = append(out.Secrets, fileRef(types.FileReferenceConfig(r)))
	}
	for _, r := range s.Configs {
		out.Configs = append(out.Configs, fileRef(types.FileReferenceConfig(r)))
	}
	l.renameItems(path+".secrets", 0, path+".secrets", len(out.Secrets), true)
	l.renameItems(path+".configs", 0, path+".configs", len(out.Configs), true)
	out.Networks = serviceNetworks(s.Networks)
	out.RestartPolicy = l.restartPolicy(path, s)
	if d := s.Deploy; d != nil {
		if d.Replicas != nil {
			out.Replicas = *d.Replicas
		}
		out.Resources = client.Resources{Limits: amounts(d.Resources.Limits), Reservations: amounts(d.Resources.Reservations)}
		out.UpdateConfig = updateConfig(d.UpdateConfig)
		out.RollbackConfig = updateConfig(d.RollbackConfig)
		out.Placement.Constraints = d.Placement.Constraints
		constraints := path + ".deploy.placement.constraints"
		l.renameItems(constraints, 0, constraints, len(out.Placement.Constraints), true)
	}
	out.Ruche = l.rucheExtension(path, s.Extensions["x-ruche"])
	out.Routes = l.routes(name, s, out.Ports, tp)
	return out
}

// renameItems maps n items of a spec list, from index from on, onto the
// compose list items they come from, as written before the walker pruned
// refused items, so that a Validate problem about "services.web.volumes[3]"
// (Mounts[3]) points at "services.web.tmpfs[0]".
// When the counts differ (compose-go expanded a port range, or merged
// lists of several files) or same is false, the items map onto the list
// itself: the line of its key is the best that can be said.
func (l *load) renameItems(specList string, from int, composeList string, n int, same bool) {
	written := 0
	for {
		if _, ok := l.items[fmt.Sprintf("%s[%d]", composeList, written)]; !ok {
			break
		}
		written++
	}
	for i := range n {
		target := composeList
		if same && written == n {
			target = l.items[fmt.Sprintf("%s[%d]", composeList, i)]
		}
		l.renames[fmt.Sprintf("%s[%d]", specList, from+i)] = target
	}
}

func (l *load) ports(path string, ports []types.ServicePortConfig) []client.PortSpec {
	var out []client.PortSpec
	for _, p := range ports {
		if p.Target > 65535 {
			l.problemAt(path+".ports", "target port %d is above 65535", p.Target)
			continue
		}
		ps := client.PortSpec{Target: uint16(p.Target), Protocol: p.Protocol, HostIP: p.HostIP}
		if p.Published != "" {
			n, err := strconv.ParseUint(p.Published, 10, 16)
			if err != nil {
				l.problemAt(path+".ports", "published port %q is not a port number", p.Published)
				continue
			}
			ps.Published = uint16(n)
		}
		out = append(out, ps)
	}
	return out
}

// mounts gathers volumes: and tmpfs: into mounts. Options the walker
// accepted and dropped (SELinux relabelling, consistency) are not carried.
func (l *load) mounts(s types.ServiceConfig) []client.MountSpec {
	var out []client.MountSpec
	for _, v := range s.Volumes {
		out = append(out, client.MountSpec{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	for _, t := range s.Tmpfs {
		out = append(out, client.MountSpec{Type: client.MountTmpfs, Target: t})
	}
	return out
}

func healthcheck(h *types.HealthCheckConfig) *client.HealthcheckSpec {
	if h == nil {
		return nil
	}
	out := &client.HealthcheckSpec{Test: []string(h.Test), Disable: h.Disable}
	if h.Interval != nil {
		out.Interval = client.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		out.Timeout = client.Duration(*h.Timeout)
	}
	if h.StartPeriod != nil {
		out.StartPeriod = client.Duration(*h.StartPeriod)
	}
	if h.Retries != nil {
		out.Retries = int(min(*h.Retries, uint64(^uint32(0)>>1)))
	}
	return out
}

func fileRef(r types.FileReferenceConfig) client.FileRef {
	out := client.FileRef{Source: r.Source, Target: r.Target, UID: r.UID, GID: r.GID}
	if r.Mode != nil {
		out.Mode = uint32(*r.Mode)
	}
	return out
}

// serviceNetworks keeps the attachments; a service attached to "default"
// alone, without aliases, is left empty, which means the same thing.
func serviceNetworks(nets map[string]*types.ServiceNetworkConfig) map[string]client.ServiceNetwork {
	if len(nets) == 1 {
		if n, ok := nets["default"]; ok && (n == nil || len(n.Aliases) == 0) {
			return nil
		}
	}
	var out map[string]client.ServiceNetwork
	for name, n := range nets {
		if out == nil {
			out = map[string]client.ServiceNetwork{}
		}
		var sn client.ServiceNetwork
		if n != nil {
			sn.Aliases = n.Aliases
		}
		out[name] = sn
	}
	return out
}

// restartPolicy merges compose's restart: with deploy.restart_policy, field
// by field, deploy.restart_policy winning where both say something.
func (l *load) restartPolicy(path string, s types.ServiceConfig) client.RestartPolicy {
	var out client.RestartPolicy
	if s.Restart != "" {
		cond, max, err := parseRestart(s.Restart)
		if err != nil { // refused by the walker already; kept as a safety net
			l.problemAt(path+".restart", "%v", err)
		}
		out.Condition, out.MaxAttempts = cond, max
	}
	if s.Deploy == nil || s.Deploy.RestartPolicy == nil {
		return out
	}
	rp := s.Deploy.RestartPolicy
	if rp.Condition != "" {
		out.Condition = rp.Condition
	}
	if rp.Delay != nil {
		out.Delay = client.Duration(*rp.Delay)
	}
	if rp.MaxAttempts != nil {
		out.MaxAttempts = int(min(*rp.MaxAttempts, uint64(^uint32(0)>>1)))
	}
	if rp.Window != nil {
		out.Window = client.Duration(*rp.Window)
	}
	return out
}

// widen widens a compose-go float32 without the noise of its binary
// representation (0.1 stays 0.1, not 0.10000000149011612).
func widen(f float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return v
}

func amounts(r *types.Resource) client.ResourceAmounts {
	if r == nil {
		return client.ResourceAmounts{}
	}
	return client.ResourceAmounts{CPUs: widen(float32(r.NanoCPUs)), Memory: int64(r.MemoryBytes)}
}

func updateConfig(u *types.UpdateConfig) client.UpdateConfig {
	if u == nil {
		return client.UpdateConfig{}
	}
	out := client.UpdateConfig{
		Delay:           client.Duration(u.Delay),
		FailureAction:   u.FailureAction,
		Monitor:         client.Duration(u.Monitor),
		MaxFailureRatio: widen(u.MaxFailureRatio),
		Order:           u.Order,
	}
	switch {
	case u.Parallelism == nil:
	case *u.Parallelism == 0:
		// Compose (Swarm): 0 updates all at once. ruche's 0 is its
		// default, one at a time.
		out.Parallelism = client.ParallelismAll
	default:
		out.Parallelism = int(min(*u.Parallelism, client.ParallelismAll))
	}
	return out
}

// rucheExtension reads x-ruche, already checked strictly by the walker.
func (l *load) rucheExtension(path string, x any) client.RucheExtension {
	var out client.RucheExtension
	m, ok := x.(map[string]any)
	if !ok {
		return out
	}
	switch v := m["public"].(type) {
	case bool:
		out.Public = &v
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
			out.Public = &b
		} else {
			l.problemAt(path+".x-ruche.public", "must be true or false")
		}
	}
	if v, ok := m["spread"].(string); ok {
		out.Spread = v
	}
	return out
}
