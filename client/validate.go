package client

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Limits checked by Validate.
const (
	// MaxReplicas caps deploy.replicas: a typo (10000 for 10) must not
	// flood a small cluster.
	MaxReplicas = 1000
	// MaxFileData caps a secret's or config's content. Both live in the
	// store, whose values must stay small.
	MaxFileData = 512 << 10
	// minMemoryLimit is Docker's own minimum for a memory limit.
	minMemoryLimit = 6 << 20
)

// ErrInvalidSpec is what every *ValidationError wraps, so callers can test
// errors.Is(err, client.ErrInvalidSpec).
var ErrInvalidSpec = errors.New("invalid project spec")

// ValidationError lists every problem found in a spec, not just the first.
// Each problem reads "<path>: <message>", where path names the compose key
// the problem comes from ("services.web.deploy.replicas"), so the compose
// loader can point at the line that wrote it. List items are indexed as in
// the spec: "services.web.ports[1]" is Ports[1], "services.web.volumes[2]"
// is Mounts[2].
type ValidationError struct {
	Problems []string
}

// Error returns one problem per line.
func (e *ValidationError) Error() string { return strings.Join(e.Problems, "\n") }

// Unwrap makes errors.Is(err, ErrInvalidSpec) true.
func (e *ValidationError) Unwrap() error { return ErrInvalidSpec }

var (
	// dnsLabel is a project or service name: it appears in private DNS
	// names (<service>.<project>.internal), replica IDs
	// ("<project>.<service>.<slot>.<nonce>") and container names.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// objectName is a volume, network, secret or config name: Docker's rule
	// for object names, capped at 63. These names never appear in DNS, and
	// real compose files use dots in them (Jitsi's "meet.jitsi").
	objectName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	// placementKey is the attribute of a placement constraint.
	placementKey = regexp.MustCompile(`^(node\.(id|hostname|role|platform\.os|platform\.arch)|node\.labels\.[A-Za-z0-9_.-]+)$`)
)

// dockerSocket are where the node's Docker socket lives: whoever reaches it
// owns the node, and every project on it.
var dockerSocket = map[string]bool{"/var/run/docker.sock": true, "/run/docker.sock": true}

// Validate checks p for everything the manager cannot deploy: names,
// references between services, volumes, networks, secrets and configs,
// ports, durations, and the enumerated values of compose. It returns a
// *ValidationError listing every problem, or nil.
//
// Validate does not apply defaults and never changes p.
func (p *ProjectSpec) Validate() error {
	v := &validator{p: p}
	v.project()
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct {
	p        *ProjectSpec
	problems []string
}

func (v *validator) addf(at, format string, args ...any) {
	v.problems = append(v.problems, at+": "+fmt.Sprintf(format, args...))
}

// sortedKeys returns the keys of m in order, so problems come out in a
// stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *validator) project() {
	p := v.p
	switch {
	case p.Name == "":
		v.addf("name", "a project needs a name")
	case !dnsLabel.MatchString(p.Name):
		v.addf("name", "%q is not a valid project name: use lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit (it becomes a DNS name)", p.Name)
	}
	if len(p.Services) == 0 {
		v.addf("services", "a project needs at least one service")
	}
	for _, k := range sortedKeys(p.Volumes) {
		v.volume(k, p.Volumes[k])
	}
	for _, k := range sortedKeys(p.Networks) {
		v.objectName("networks."+k, k, p.Networks[k].Name)
	}
	for _, k := range sortedKeys(p.Secrets) {
		v.objectName("secrets."+k, k, p.Secrets[k].Name)
		v.fileData("secrets."+k, len(p.Secrets[k].Data))
	}
	for _, k := range sortedKeys(p.Configs) {
		v.objectName("configs."+k, k, p.Configs[k].Name)
		v.fileData("configs."+k, len(p.Configs[k].Data))
	}
	for _, k := range sortedKeys(p.Services) {
		v.service(k, p.Services[k])
	}
	v.publishedPorts()
	v.routeConflicts()
	v.dependencyCycles()
}

func (v *validator) objectName(at, key, name string) {
	if !objectName.MatchString(key) {
		v.addf(at, "%q is not a valid name: use letters, digits, '_', '.' and '-', at most 63, starting with a letter or digit", key)
	}
	if name != key {
		v.addf(at+".name", "is %q, must be its key %q", name, key)
	}
}

func (v *validator) fileData(at string, n int) {
	if n > MaxFileData {
		v.addf(at, "content is %d bytes, more than the %d allowed", n, MaxFileData)
	}
}

func (v *validator) volume(key string, vol VolumeSpec) {
	at := "volumes." + key
	if !objectName.MatchString(key) {
		v.addf(at, "%q is not a valid name: use letters, digits, '_', '.' and '-', at most 63, starting with a letter or digit", key)
	}
	switch {
	case vol.External && !objectName.MatchString(vol.Name):
		v.addf(at+".name", "%q is not a valid Docker volume name", vol.Name)
	case !vol.External && vol.Name != key:
		v.addf(at+".name", "is %q, must be its key %q (only external volumes name a Docker volume of their own)", vol.Name, key)
	}
	if vol.External && (vol.Driver != "" || len(vol.DriverOpts) > 0) {
		v.addf(at+".driver", "an external volume exists already: it takes no driver or driver_opts")
	}
}

func (v *validator) service(key string, s ServiceSpec) {
	at := "services." + key
	switch {
	case strings.Contains(key, "_"):
		v.addf(at, "%q is not a valid service name: use '-' instead of '_' (the name is a DNS label, <service>.<project>.internal)", key)
	case !dnsLabel.MatchString(key):
		v.addf(at, "%q is not a valid service name: use lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit (the name is a DNS label, <service>.<project>.internal)", key)
	}
	if s.Name != key {
		v.addf(at+".name", "is %q, must be its key %q", s.Name, key)
	}
	switch {
	case s.Image == "":
		v.addf(at+".image", "a service needs an image")
	case strings.ContainsFunc(s.Image, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		v.addf(at+".image", "%q is not an image reference", s.Image)
	}
	for k := range s.Environment {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.addf(at+".environment", "%q is not a valid variable name", k)
		}
	}
	if s.WorkingDir != "" && !path.IsAbs(s.WorkingDir) {
		v.addf(at+".working_dir", "%q must be an absolute path", s.WorkingDir)
	}
	if s.Hostname != "" && !validHostname(s.Hostname) {
		v.addf(at+".hostname", "%q is not a valid host name", s.Hostname)
	}
	if s.StopGracePeriod < 0 {
		v.addf(at+".stop_grace_period", "must not be negative")
	}
	switch {
	case s.Replicas < 0:
		v.addf(at+".deploy.replicas", "must not be negative, got %d", s.Replicas)
	case s.Replicas > MaxReplicas:
		v.addf(at+".deploy.replicas", "%d is more than the %d a service may have", s.Replicas, MaxReplicas)
	}
	v.ports(at, s.Ports)
	v.mounts(at, s.Mounts)
	v.healthcheck(at+".healthcheck", s.Healthcheck)
	v.dependsOn(at, key, s.DependsOn)
	v.fileRefs(at+".secrets", s.Secrets, func(n string) bool { _, ok := v.p.Secrets[n]; return ok }, "secret")
	v.fileRefs(at+".configs", s.Configs, func(n string) bool { _, ok := v.p.Configs[n]; return ok }, "config")
	v.serviceNetworks(at, s.Networks)
	v.resources(at+".deploy.resources", s.Resources)
	v.restartPolicy(at+".deploy.restart_policy", s.RestartPolicy)
	v.updateConfig(at+".deploy.update_config", s.UpdateConfig, false)
	v.updateConfig(at+".deploy.rollback_config", s.RollbackConfig, true)
	for i, c := range s.Placement.Constraints {
		if msg := checkConstraint(c); msg != "" {
			v.addf(fmt.Sprintf("%s.deploy.placement.constraints[%d]", at, i), "%q: %s", c, msg)
		}
	}
	v.routes(at, s.Routes)
	switch s.Ruche.Spread {
	case SpreadDefault, SpreadMaxAvailability:
	default:
		v.addf(at+".x-ruche.spread", "%q is not a spread mode (use %q or leave it out)", s.Ruche.Spread, SpreadMaxAvailability)
	}
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if !dnsLabel.MatchString(strings.ToLower(label)) {
			return false
		}
	}
	return true
}

func (v *validator) ports(at string, ports []PortSpec) {
	for i, pt := range ports {
		p := fmt.Sprintf("%s.ports[%d]", at, i)
		if pt.Target == 0 {
			v.addf(p, "target port must be between 1 and 65535")
		}
		switch pt.Protocol {
		case "", "tcp", "udp":
		default:
			v.addf(p, "protocol %q of port %d is not tcp or udp", pt.Protocol, pt.Target)
		}
		if pt.HostIP != "" && net.ParseIP(pt.HostIP) == nil {
			v.addf(p, "host_ip %q of port %d is not an IP address", pt.HostIP, pt.Target)
		}
	}
}

// portKey identifies a published host port.
type portKey struct {
	port  uint16
	proto string
}

type portUse struct {
	service string
	hostIP  string
}

// publishedPorts reports host ports published twice in the project: two
// replicas of different services could land on one node and fight for it.
// Replicas of one service publishing a port are spread by the scheduler.
func (v *validator) publishedPorts() {
	seen := map[portKey][]portUse{}
	for _, name := range sortedKeys(v.p.Services) {
		for i, pt := range v.p.Services[name].Ports {
			if pt.Published == 0 {
				continue
			}
			proto := pt.Protocol
			if proto == "" {
				proto = "tcp"
			}
			k := portKey{pt.Published, proto}
			for _, prev := range seen[k] {
				if ipsOverlap(prev.hostIP, pt.HostIP) {
					where := "service " + prev.service
					if prev.service == name {
						where = "this service already"
					}
					v.addf(fmt.Sprintf("services.%s.ports[%d]", name, i), "host port %d/%s is published twice (%s publishes it)", pt.Published, proto, where)
					break
				}
			}
			seen[k] = append(seen[k], portUse{service: name, hostIP: pt.HostIP})
		}
	}
}

func ipsOverlap(a, b string) bool {
	unspecified := func(s string) bool {
		if s == "" {
			return true
		}
		ip := net.ParseIP(s)
		return ip != nil && ip.IsUnspecified()
	}
	if unspecified(a) || unspecified(b) {
		return true
	}
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	if ia == nil || ib == nil {
		return a == b
	}
	return ia.Equal(ib)
}

func (v *validator) mounts(at string, mounts []MountSpec) {
	targets := map[string]bool{}
	for i, m := range mounts {
		p := fmt.Sprintf("%s.volumes[%d]", at, i)
		switch {
		case m.Target == "":
			v.addf(p, "a %s mount needs a target", m.Type)
		case !strings.HasPrefix(m.Target, "/"):
			v.addf(p, "target %q must be an absolute path", m.Target)
		case path.Clean(m.Target) == "/":
			v.addf(p, "target %q: cannot mount over /", m.Target)
		case targets[path.Clean(m.Target)]:
			v.addf(p, "target %q is mounted twice", m.Target)
		}
		targets[path.Clean(m.Target)] = true
		switch m.Type {
		case MountVolume:
			if m.Source == "" {
				break // anonymous volume
			}
			if _, ok := v.p.Volumes[m.Source]; !ok {
				v.addf(p, "volume %q is not declared in the top-level volumes", m.Source)
			}
		case MountBind:
			switch {
			case !strings.HasPrefix(m.Source, "/"):
				v.addf(p, "bind source %q must be an absolute path", m.Source)
			case dockerSocket[path.Clean(m.Source)]:
				v.addf(p, "a replica never gets the node's Docker socket (ruche reads Traefik labels itself)")
			}
		case MountTmpfs:
			if m.Source != "" {
				v.addf(p, "a tmpfs mount has no source, got %q", m.Source)
			}
		default:
			v.addf(p, "mount type %q is not volume, bind or tmpfs", m.Type)
		}
	}
}

func (v *validator) healthcheck(p string, h *HealthcheckSpec) {
	if h == nil {
		return
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(h.Test) < 2 || strings.TrimSpace(strings.Join(h.Test[1:], "")) == "" {
				v.addf(p+".test", "%s needs a command", h.Test[0])
			}
		default:
			v.addf(p+".test", "must start with CMD, CMD-SHELL or NONE, got %q", h.Test[0])
		}
		if h.Disable && h.Test[0] != "NONE" {
			v.addf(p+".disable", "disable: true contradicts test")
		}
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}} {
		switch {
		case d.v < 0:
			v.addf(p+"."+d.name, "must not be negative")
		case d.v > 0 && d.v.D().Milliseconds() < 1:
			v.addf(p+"."+d.name, "must be at least 1ms (Docker's minimum)")
		}
	}
	if h.Retries < 0 {
		v.addf(p+".retries", "must not be negative")
	}
}

func (v *validator) dependsOn(at, self string, deps map[string]DependencySpec) {
	for _, name := range sortedKeys(deps) {
		p := at + ".depends_on." + name
		if name == self {
			v.addf(p, "a service cannot depend on itself")
		} else if _, ok := v.p.Services[name]; !ok {
			v.addf(p, "service %q does not exist in the project", name)
		}
		switch deps[name].Condition {
		case ConditionStarted, ConditionHealthy, ConditionCompleted:
		default:
			v.addf(p+".condition", "%q is not %s, %s or %s", deps[name].Condition, ConditionStarted, ConditionHealthy, ConditionCompleted)
		}
	}
}

// dependencyCycles reports each depends_on cycle once, as a at.
func (v *validator) dependencyCycles() {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		state[name] = visiting
		stack = append(stack, name)
		for _, dep := range sortedKeys(v.p.Services[name].DependsOn) {
			if _, ok := v.p.Services[dep]; !ok || dep == name {
				continue // reported by dependsOn
			}
			switch state[dep] {
			case unvisited:
				visit(dep)
			case visiting:
				i := slices.Index(stack, dep)
				cycle := append(slices.Clone(stack[i:]), dep)
				key := canonicalCycle(cycle[:len(cycle)-1])
				if !reported[key] {
					reported[key] = true
					v.addf("services."+name+".depends_on", "dependency cycle: %s", strings.Join(cycle, " -> "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, name := range sortedKeys(v.p.Services) {
		if state[name] == unvisited {
			visit(name)
		}
	}
}

// canonicalCycle names a cycle independently of where it was entered.
func canonicalCycle(c []string) string {
	if len(c) == 0 {
		return ""
	}
	m := 0
	for i := range c {
		if c[i] < c[m] {
			m = i
		}
	}
	return strings.Join(append(slices.Clone(c[m:]), c[:m]...), ",")
}

func (v *validator) fileRefs(p string, refs []FileRef, declared func(string) bool, kind string) {
	targets := map[string]bool{}
	for i, r := range refs {
		p := fmt.Sprintf("%s[%d]", p, i)
		switch {
		case r.Source == "":
			v.addf(p, "a %s reference needs a source", kind)
		case !declared(r.Source):
			v.addf(p, "%s %q is not declared in the top-level %ss", kind, r.Source, kind)
		}
		if r.Mode > 0o7777 {
			v.addf(p, "mode %#o of %s %q is not a file mode", r.Mode, kind, r.Source)
		}
		t := r.Target
		if t == "" {
			t = r.Source
		}
		if targets[t] {
			v.addf(p, "%s target %q is used twice", kind, t)
		}
		targets[t] = true
	}
}

func (v *validator) serviceNetworks(at string, nets map[string]ServiceNetwork) {
	for _, name := range sortedKeys(nets) {
		p := at + ".networks." + name
		if _, ok := v.p.Networks[name]; !ok && name != "default" {
			v.addf(p, "network %q is not declared in the top-level networks", name)
		}
		for _, a := range nets[name].Aliases {
			if !validHostname(a) {
				v.addf(p+".aliases", "%q is not a valid DNS name", a)
			}
		}
	}
}

func (v *validator) resources(p string, r Resources) {
	for _, a := range []struct {
		name string
		amt  ResourceAmounts
	}{{"limits", r.Limits}, {"reservations", r.Reservations}} {
		if a.amt.CPUs < 0 {
			v.addf(p+"."+a.name+".cpus", "must not be negative")
		}
		if a.amt.Memory < 0 {
			v.addf(p+"."+a.name+".memory", "must not be negative")
		}
	}
	if m := r.Limits.Memory; m > 0 && m < minMemoryLimit {
		v.addf(p+".limits.memory", "%d bytes is below Docker's minimum of 6MiB", m)
	}
	if r.Limits.CPUs > 0 && r.Reservations.CPUs > r.Limits.CPUs {
		v.addf(p+".reservations.cpus", "reserves more (%g) than the limit (%g)", r.Reservations.CPUs, r.Limits.CPUs)
	}
	if r.Limits.Memory > 0 && r.Reservations.Memory > r.Limits.Memory {
		v.addf(p+".reservations.memory", "reserves more (%d bytes) than the limit (%d bytes)", r.Reservations.Memory, r.Limits.Memory)
	}
}

func (v *validator) restartPolicy(p string, r RestartPolicy) {
	switch r.Condition {
	case "", RestartAny, RestartOnFailure, RestartNone:
	default:
		v.addf(p+".condition", "%q is not %s, %s or %s", r.Condition, RestartNone, RestartOnFailure, RestartAny)
	}
	if r.Delay < 0 {
		v.addf(p+".delay", "must not be negative")
	}
	if r.Window < 0 {
		v.addf(p+".window", "must not be negative")
	}
	if r.MaxAttempts < 0 {
		v.addf(p+".max_attempts", "must not be negative")
	}
}

func (v *validator) updateConfig(p string, u UpdateConfig, rollback bool) {
	if u.Parallelism < 0 {
		v.addf(p+".parallelism", "must not be negative")
	}
	if u.Delay < 0 {
		v.addf(p+".delay", "must not be negative")
	}
	if u.Monitor < 0 {
		v.addf(p+".monitor", "must not be negative")
	}
	switch {
	case u.FailureAction == "", u.FailureAction == FailurePause, u.FailureAction == FailureContinue:
	case u.FailureAction == FailureRollback && !rollback:
	case u.FailureAction == FailureRollback:
		v.addf(p+".failure_action", "a rollback that fails cannot roll back: use %s or %s", FailurePause, FailureContinue)
	default:
		v.addf(p+".failure_action", "%q is not %s, %s or %s", u.FailureAction, FailureRollback, FailurePause, FailureContinue)
	}
	if u.MaxFailureRatio < 0 || u.MaxFailureRatio > 1 {
		v.addf(p+".max_failure_ratio", "%g is not between 0 and 1", u.MaxFailureRatio)
	}
	switch u.Order {
	case "", OrderStopFirst, OrderStartFirst:
	default:
		v.addf(p+".order", "%q is not %s or %s", u.Order, OrderStopFirst, OrderStartFirst)
	}
}

// checkConstraint returns what is wrong with a placement constraint, or "".
func checkConstraint(c string) string {
	op := "=="
	i := strings.Index(c, "==")
	if j := strings.Index(c, "!="); j >= 0 && (i < 0 || j < i) {
		i, op = j, "!="
	}
	if i < 0 {
		return "a constraint reads <attribute> == <value> or <attribute> != <value>"
	}
	key := strings.TrimSpace(c[:i])
	val := strings.TrimSpace(c[i+len(op):])
	if !placementKey.MatchString(key) {
		return fmt.Sprintf("%q is not node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>", key)
	}
	if val == "" || strings.ContainsAny(val, "=!") {
		return "the value is missing or malformed"
	}
	return ""
}

// routes checks each route of a service on its own; routeConflicts checks
// them against each other. A route's problems are at
// "services.<s>.routes[i]" and its fields (".host", ".path_prefix",
// ".port", ".tls", ".cert", ".key"); the compose loader maps them onto the
// label or x-ruche key that wrote the route.
func (v *validator) routes(at string, routes []RouteSpec) {
	for i, r := range routes {
		p := fmt.Sprintf("%s.routes[%d]", at, i)
		v.routeHost(p+".host", r)
		switch pp := r.PathPrefix; {
		case pp == "":
		case !strings.HasPrefix(pp, "/"):
			v.addf(p+".path_prefix", "%q must start with /", pp)
		case strings.ContainsAny(pp, "?#") || strings.ContainsFunc(pp, func(c rune) bool { return c <= ' ' || c == 0x7f }):
			v.addf(p+".path_prefix", "%q is not a URL path: no spaces, ? or #", pp)
		}
		if r.Port == 0 {
			v.addf(p+".port", "port must be between 1 and 65535")
		}
		switch r.TLS {
		case TLSAuto, TLSACME, TLSInternal, TLSNone:
			if len(r.Cert) > 0 || len(r.Key) > 0 {
				v.addf(p+".cert", "a certificate and key are given, but tls is %q, not %q", r.TLS, TLSFiles)
			}
		case TLSFiles:
			v.routeCert(p, r)
		default:
			v.addf(p+".tls", "%q is not a TLS mode (%s, %s, %s or %s, or leave it out)", r.TLS, TLSACME, TLSInternal, TLSFiles, TLSNone)
		}
	}
}

// routeHost checks a route's host: a lowercase DNS name, or a wildcard
// *.<name> covering one label, which ACME cannot issue without DNS-01.
func (v *validator) routeHost(p string, r RouteSpec) {
	h := r.Host
	name, wildcard := strings.CutPrefix(h, "*.")
	labels := strings.Split(name, ".")
	switch {
	case h == "":
		v.addf(p, "a route needs a host")
	case strings.Contains(name, "*"):
		v.addf(p, "%q is not a valid host: a wildcard is one * as the first label, as in *.example.org", h)
	case !validHostname(name):
		v.addf(p, "%q is not a valid DNS name", h)
	case strings.ToLower(h) != h:
		v.addf(p, "%q: write host names in lowercase", h)
	case allDigits(labels[len(labels)-1]):
		v.addf(p, "%q is an IP address: a route needs a host name", h)
	case wildcard && (r.TLS == TLSAuto || r.TLS == TLSACME):
		v.addf(p, "wildcard host %q needs tls %s, %s or %s: ACME certificates for wildcards need DNS-01, which ruche does not do yet", h, TLSInternal, TLSFiles, TLSNone)
	}
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// routeCert checks the certificate and key of a TLSFiles route: a
// matching PEM pair whose certificate covers the host.
func (v *validator) routeCert(p string, r RouteSpec) {
	switch {
	case len(r.Cert) == 0 && len(r.Key) == 0:
		v.addf(p+".cert", "tls %s needs a certificate and its key", TLSFiles)
		return
	case len(r.Cert) == 0:
		v.addf(p+".cert", "tls %s needs a certificate", TLSFiles)
		return
	case len(r.Key) == 0:
		v.addf(p+".key", "tls %s needs the certificate's key", TLSFiles)
		return
	case len(r.Cert) > MaxFileData:
		v.addf(p+".cert", "certificate is %d bytes, more than the %d allowed", len(r.Cert), MaxFileData)
		return
	case len(r.Key) > MaxFileData:
		v.addf(p+".key", "key is %d bytes, more than the %d allowed", len(r.Key), MaxFileData)
		return
	}
	pair, err := tls.X509KeyPair(r.Cert, r.Key)
	if err != nil {
		v.addf(p+".cert", "certificate and key are not a PEM pair that matches: %v", err)
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		v.addf(p+".cert", "certificate: %v", err)
		return
	}
	if r.Host == "" {
		return
	}
	if strings.HasPrefix(r.Host, "*.") {
		if !slices.Contains(leaf.DNSNames, r.Host) {
			v.addf(p+".cert", "the certificate does not cover %s (it names %s)", r.Host, certNames(leaf))
		}
	} else if err := leaf.VerifyHostname(r.Host); err != nil {
		v.addf(p+".cert", "the certificate does not cover %s (it names %s)", r.Host, certNames(leaf))
	}
}

func certNames(c *x509.Certificate) string {
	if len(c.DNSNames) == 0 {
		return "no DNS name"
	}
	return strings.Join(c.DNSNames, ", ")
}

// routeUse is a route seen by routeConflicts.
type routeUse struct {
	service string
	index   int
	source  string
	tls     string
	cert    []byte
}

// routeConflicts reports a host and path routed twice in the project, and
// a host whose routes ask for different TLS: a host has one certificate.
// TLS "" (the platform's default) goes with any mode. Conflicts with other
// projects are the API server's to find.
func (v *validator) routeConflicts() {
	paths := map[string]routeUse{}
	hostTLS := map[string]routeUse{}
	for _, name := range sortedKeys(v.p.Services) {
		for i, r := range v.p.Services[name].Routes {
			p := fmt.Sprintf("services.%s.routes[%d]", name, i)
			use := routeUse{service: name, index: i, source: r.Source, tls: r.TLS, cert: r.Cert}
			host := r.Host // lowercase, or routeHost reported it
			// The proxy matches prefixes on segment boundaries: "/api/"
			// is "/api", and "/" is every path, as no prefix is (Claim).
			prefix := strings.TrimRight(r.PathPrefix, "/")
			key := r.Claim()
			if prev, dup := paths[key]; dup {
				what := "host " + host
				if prefix != "" {
					what += " path " + prefix
				}
				where := "service " + prev.service + " routes it too"
				if prev.source != "" {
					where += ", from " + prev.source
				}
				if prev.service == name {
					where = fmt.Sprintf("routes[%d] of this service routes it already", prev.index)
					if prev.source != "" {
						where = prev.source + " of this service routes it already"
					}
				}
				v.addf(p, "%s is routed twice (%s)", what, where)
				continue
			}
			paths[key] = use
			if r.TLS == TLSAuto {
				continue
			}
			prev, seen := hostTLS[host]
			switch {
			case !seen:
				hostTLS[host] = use
			case prev.tls != r.TLS:
				v.addf(p+".tls", "host %s has tls %s here but %s on service %s: the routes of a host share its TLS", host, r.TLS, prev.tls, prev.service)
			case r.TLS == TLSFiles && !bytes.Equal(prev.cert, r.Cert):
				v.addf(p+".cert", "host %s has another certificate on service %s: the routes of a host share its certificate", host, prev.service)
			}
		}
	}
}
