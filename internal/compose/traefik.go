package compose

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ruche-platform/ruche/client"
)

// Traefik's Docker labels, read so that a compose file written for Traefik
// deploys as it is. What ruche honours becomes routes; every other label
// gets a message naming it: a problem when the file would behave
// differently without it (who may reach the service, which requests reach
// it and how they look, what visitors get back), a warning when ruche does
// the same its own way or the difference is cosmetic. README.md has the
// table for operators.

// labelMsg is a message about one label of one service.
type labelMsg struct {
	service string // compose service
	label   string // the label key
	text    string
	warn    bool
}

// Entrypoint names: ruche serves routes on two entrypoints, named as in
// Traefik's documentation and as their protocols.
var (
	plainEntrypoints  = map[string]bool{"web": true, "http": true}
	secureEntrypoints = map[string]bool{"websecure": true, "https": true}
)

// defaultRuleReason is why a Traefik service or traefik.enable without a
// router cannot be routed.
const defaultRuleReason = "Traefik would route it with the defaultRule of its static configuration, which ruche does not read: add traefik.http.routers.<name>.rule=Host(`...`) or a ruche.route label"

// tObject is a router, service or middleware declared in labels: its
// options (lowercased, after the name) with their values and label keys.
type tObject struct {
	name    string
	service string   // the compose service whose labels declare it
	labels  []string // every label of the object, in order
	values  map[string]string
	keys    map[string]string
	used    bool
}

func (o *tObject) set(opt, key, value string) {
	if o.values == nil {
		o.values, o.keys = map[string]string{}, map[string]string{}
	}
	o.values[opt], o.keys[opt] = value, key
}

func (o *tObject) has(opt string) bool { _, ok := o.keys[opt]; return ok }

// firstKey is the first label of the object, for messages about it as a
// whole.
func (o *tObject) firstKey() string { return o.labels[0] }

// mainKey is the label to report a router at: its rule, else its first.
func (o *tObject) mainKey() string {
	if k, ok := o.keys["rule"]; ok {
		return k
	}
	return o.firstKey()
}

// traefikLabels is what one compose service's Traefik labels declare.
type traefikLabels struct {
	service     string
	enable      string // label key of traefik.enable, if written
	routers     map[string]*tObject
	services    map[string]*tObject
	middlewares map[string]*tObject
}

// traefikProject reads the Traefik labels of every service of a project:
// Traefik's middlewares and services are shared by all containers, so a
// router may use what another service's labels declare.
type traefikProject struct {
	byService   map[string]*traefikLabels
	middlewares map[string]*tObject // by name, first declaration
	services    map[string]*tObject // by name, first declaration
	msgs        []labelMsg
	seen        map[labelMsg]bool
}

func (tp *traefikProject) problem(service, label, format string, args ...any) {
	tp.add(labelMsg{service: service, label: label, text: fmt.Sprintf(format, args...)})
}

func (tp *traefikProject) warning(service, label, format string, args ...any) {
	tp.add(labelMsg{service: service, label: label, text: fmt.Sprintf(format, args...), warn: true})
}

func (tp *traefikProject) add(m labelMsg) {
	if !tp.seen[m] {
		tp.seen[m] = true
		tp.msgs = append(tp.msgs, m)
	}
}

// isRouteLabel says whether a label is ingress configuration, which ruche
// takes out of the container's labels: a route change must not change the
// replica template.
func isRouteLabel(key string) bool {
	return strings.HasPrefix(key, "traefik.") || key == rucheRouteLabel || strings.HasPrefix(key, rucheRouteLabel+".")
}

// readTraefik reads the Traefik labels of the services (compose service ->
// labels), in name order.
func readTraefik(labels map[string]map[string]string) *traefikProject {
	tp := &traefikProject{byService: map[string]*traefikLabels{}, middlewares: map[string]*tObject{},
		services: map[string]*tObject{}, seen: map[labelMsg]bool{}}
	for _, svc := range sortedKeys(labels) {
		if tl := tp.read(svc, labels[svc]); tl != nil {
			tp.byService[svc] = tl
		}
	}
	return tp
}

// read reads one service's labels; it returns nil when the service has no
// Traefik label or says traefik.enable=false.
func (tp *traefikProject) read(svc string, labels map[string]string) *traefikLabels {
	tl := &traefikLabels{service: svc, routers: map[string]*tObject{}, services: map[string]*tObject{}, middlewares: map[string]*tObject{}}
	found := false
	for _, key := range sortedKeys(labels) {
		if !strings.HasPrefix(key, "traefik.") {
			continue
		}
		found = true
		if strings.EqualFold(key, "traefik.enable") {
			b, err := strconv.ParseBool(strings.TrimSpace(labels[key]))
			if err != nil {
				tp.problem(svc, key, "must be true or false")
				continue
			}
			if !b {
				return nil // Traefik ignores the container, and so does ruche
			}
			tl.enable = key
		}
	}
	if !found {
		return nil
	}
	for _, key := range sortedKeys(labels) {
		if strings.HasPrefix(key, "traefik.") && !strings.EqualFold(key, "traefik.enable") {
			tp.label(tl, key, labels[key])
		}
	}
	return tl
}

// label files one label under its router, service or middleware, or
// reports it.
func (tp *traefikProject) label(tl *traefikLabels, key, value string) {
	svc := tl.service
	parts := strings.Split(key, ".")
	switch strings.ToLower(parts[1]) {
	case "http":
	case "tcp", "udp":
		tp.problem(svc, key, "Traefik %s routers are not supported: ruche routes HTTP; publish the port with ports: instead", strings.ToUpper(parts[1]))
		return
	case "docker":
		switch opt := strings.ToLower(strings.Join(parts[2:], ".")); opt {
		case "network":
			tp.warning(svc, key, "not used: ruche reaches replicas on their project network itself")
		case "lbswarm":
			tp.warning(svc, key, "not used: ruche balances over the replicas itself")
		default:
			tp.problem(svc, key, "not a Traefik label ruche knows")
		}
		return
	default:
		tp.problem(svc, key, "not a Traefik label ruche knows (it reads traefik.enable and traefik.http.routers, services and middlewares)")
		return
	}
	if len(parts) < 5 || parts[3] == "" {
		tp.problem(svc, key, "not a Traefik label ruche knows (traefik.http.<routers|services|middlewares>.<name>.<option>)")
		return
	}
	kind, name, opt := strings.ToLower(parts[2]), parts[3], strings.ToLower(strings.Join(parts[4:], "."))
	var (
		objects map[string]*tObject
		honour  bool
	)
	switch kind {
	case "routers":
		objects, honour = tl.routers, tp.routerOption(svc, key, opt)
	case "services":
		objects, honour = tl.services, tp.serviceOption(svc, key, opt, value)
	case "middlewares":
		objects, honour = tl.middlewares, true
	default:
		tp.problem(svc, key, "Traefik %s are not supported", parts[2])
		return
	}
	o := objects[name]
	if o == nil {
		o = &tObject{name: name, service: svc}
		objects[name] = o
		shared := tp.services
		if kind == "middlewares" {
			shared = tp.middlewares
		}
		if kind != "routers" {
			if first, dup := shared[name]; dup {
				what := "middleware"
				if kind == "services" {
					what = "service"
				}
				tp.problem(svc, key, "Traefik %s %s is declared by service %s too: Traefik would merge them, ruche sends a route to the replicas of one service", what, name, first.service)
			} else {
				shared[name] = o
			}
		}
	}
	o.labels = append(o.labels, key)
	if honour {
		o.set(opt, key, value)
	}
}

// routerOption reports what ruche does with a router option; it returns
// true for the options routes are made of.
func (tp *traefikProject) routerOption(svc, key, opt string) bool {
	switch {
	case opt == "rule", opt == "service", opt == "entrypoints", opt == "middlewares", opt == "tls", opt == "tls.certresolver":
		return true
	case opt == "rulesyntax":
		return false // both syntaxes are read
	case opt == "priority":
		tp.warning(svc, key, "not used: ruche picks, among the routes of a host, the one with the longest matching path prefix")
	case opt == "tls.options":
		tp.warning(svc, key, "not used: ruche serves TLS with its own settings")
	case strings.HasPrefix(opt, "tls.domains"):
		tp.warning(svc, key, "not used: ruche obtains a certificate for each host a rule names")
	case strings.HasPrefix(opt, "observability."):
		tp.warning(svc, key, "not used: ruche's access log and metrics cover every route")
	default:
		tp.problem(svc, key, "not a Traefik router option ruche knows (it reads rule, service, entrypoints, middlewares, tls and tls.certresolver)")
	}
	return false
}

// serviceOption reports what ruche does with a service option; it returns
// true for the options routes are made of.
func (tp *traefikProject) serviceOption(svc, key, opt, value string) bool {
	v := strings.ToLower(strings.TrimSpace(value))
	switch {
	case opt == "loadbalancer.server.port":
		return true
	case opt == "loadbalancer.server.scheme":
		if v != "http" {
			tp.problem(svc, key, "scheme %s is not supported: ruche speaks plain HTTP to replicas", value)
		}
		return true // declares the service all the same
	case opt == "loadbalancer.passhostheader":
		if b, err := strconv.ParseBool(v); err != nil || !b {
			tp.problem(svc, key, "ruche always passes the Host header to replicas")
		}
		return true
	case strings.HasPrefix(opt, "loadbalancer.healthcheck."):
		tp.warning(svc, key, "not used: ruche checks the health of replicas itself (their healthcheck, and the proxy's own checks)")
		return true
	case opt == "loadbalancer.strategy":
		tp.warning(svc, key, "not used: ruche sends a request to the least busy of two random ready replicas")
		return true
	case opt == "loadbalancer.responseforwarding.flushinterval":
		tp.warning(svc, key, "not used: ruche's proxy decides when to flush responses")
		return true
	case strings.HasPrefix(opt, "loadbalancer.sticky."):
		tp.problem(svc, key, "sticky sessions are not supported: a client's requests may reach any ready replica")
	case opt == "loadbalancer.serverstransport":
		tp.problem(svc, key, "servers transports are not supported: ruche speaks plain HTTP to replicas")
	default:
		tp.problem(svc, key, "not a Traefik service option ruche knows (it reads loadbalancer.server.port)")
	}
	return true
}

// providerName splits "name@provider"; the docker provider is the labels'
// own.
func providerName(ref string) (name, provider string) {
	name, provider, _ = strings.Cut(strings.TrimSpace(ref), "@")
	if provider == "docker" || provider == "swarm" {
		provider = ""
	}
	return name, provider
}

// routes turns the routers of one service into routes. known are the
// service's container ports, for a router whose service has no port.
func (tp *traefikProject) routes(svc string) []foundRoute {
	tl := tp.byService[svc]
	if tl == nil {
		return nil
	}
	var out []foundRoute
	for _, name := range sortedKeys(tl.routers) {
		for _, r := range tp.router(tl, tl.routers[name]) {
			out = tp.merge(svc, out, r)
		}
	}
	for i, r := range out {
		if r.redirect != "" && r.spec.TLS == client.TLSNone {
			tp.warning(svc, r.redirect, "%s redirects to HTTPS, but has no TLS (its routers are on web only, without tls): ruche serves %s over plain HTTP", r.spec.Source, hostPath(r.spec))
		}
		out[i].at = r.at.under("labels.")
	}
	return out
}

// merge adds r to routes, merging it with a route of another router of
// the service for the same host and path: the usual pair of routers, one
// on web and one on websecure, is one route in ruche.
func (tp *traefikProject) merge(svc string, routes []foundRoute, r foundRoute) []foundRoute {
	for i, prev := range routes {
		if prev.spec.Host != r.spec.Host || prev.spec.PathPrefix != r.spec.PathPrefix {
			continue
		}
		if prev.spec.Port != r.spec.Port || prev.needsPort != r.needsPort {
			tp.problem(svc, r.at.item, "%s routes %s like %s, but to another port", r.spec.Source, hostPath(r.spec), prev.spec.Source)
			return routes
		}
		if tlsRank(r.spec.TLS) > tlsRank(prev.spec.TLS) {
			prev.spec.TLS, prev.at.tls = r.spec.TLS, r.at.tls
		}
		prev.redirect = cmpOr(prev.redirect, r.redirect)
		prev.routers = append(prev.routers, r.routers...)
		prev.spec.Source = "traefik routers " + strings.Join(prev.routers, " and ")
		routes[i] = prev
		return routes
	}
	return append(routes, r)
}

// tlsRank orders the TLS modes Traefik labels give, the strongest last.
func tlsRank(mode string) int {
	switch mode {
	case client.TLSNone:
		return 0
	case client.TLSAuto:
		return 1
	}
	return 2
}

func hostPath(r client.RouteSpec) string { return r.Host + r.PathPrefix }

// router turns one router into its routes, or reports why it cannot.
func (tp *traefikProject) router(tl *traefikLabels, r *tObject) []foundRoute {
	svc := tl.service
	ok := true // every problem of the router is reported, then it is dropped
	ruleKey, hasRule := r.keys["rule"]
	var pairs [][2]string
	if !hasRule {
		tp.problem(svc, r.firstKey(), "router %s has no rule: %s", r.name, defaultRuleReason)
		ruleKey, ok = r.firstKey(), false
	} else if pairs, hasRule = tp.rule(svc, ruleKey, r.values["rule"]); !hasRule {
		ok = false
	}
	target, found := tp.routerService(tl, r)
	ok = ok && found
	base := foundRoute{
		spec:    client.RouteSpec{Source: "traefik router " + r.name},
		at:      routeAt{item: ruleKey, host: ruleKey, path: ruleKey, port: ruleKey, tls: ruleKey},
		routers: []string{r.name},
	}
	if target != nil && target.has("loadbalancer.server.port") {
		key := target.keys["loadbalancer.server.port"]
		base.at.port = key
		port, err := strconv.ParseUint(strings.TrimSpace(target.values["loadbalancer.server.port"]), 10, 16)
		if err != nil || port == 0 {
			tp.problem(target.service, key, "%q is not a port between 1 and 65535", target.values["loadbalancer.server.port"])
			ok = false
		}
		base.spec.Port = uint16(port)
	} else {
		name := r.name
		if target != nil {
			name = target.name
		}
		base.needsPort = true
		base.portHint = "set traefik.http.services." + name + ".loadbalancer.server.port"
	}
	if !tp.routerTLS(svc, r, &base) {
		ok = false
	}
	if !tp.middlewaresOf(svc, r, &base.redirect) {
		ok = false
	}
	if !ok {
		return nil
	}
	out := make([]foundRoute, len(pairs))
	for i, hp := range pairs {
		out[i] = base
		out[i].routers = slices.Clone(base.routers)
		out[i].spec.Host, out[i].spec.PathPrefix = hp[0], hp[1]
	}
	return out
}

// matcherHints say what to write instead of a matcher ruche does not
// honour.
var matcherHints = map[string]string{
	"path":          "Path matches one path only and ruche routes path prefixes: write PathPrefix if that is what is meant",
	"pathregexp":    "ruche routes path prefixes: write PathPrefix",
	"hostregexp":    "for the subdomains of a domain write Host(`*.example.org`)",
	"hostsni":       "it is a TCP matcher and ruche routes HTTP",
	"hostsniregexp": "it is a TCP matcher and ruche routes HTTP",
	"alpn":          "it is a TCP matcher and ruche routes HTTP",
	"clientip":      "ruche does not restrict clients by address",
}

// rule reads a rule into its (host, path prefix) pairs.
func (tp *traefikProject) rule(svc, key, rule string) ([][2]string, bool) {
	terms, err := parseRule(rule)
	if err != nil {
		tp.problem(svc, key, "%v", err)
		return nil, false
	}
	ok := true
	var pairs [][2]string
	for _, term := range terms {
		var hosts, prefixes []string
		for _, m := range term {
			switch strings.ToLower(m.name) {
			case "host", "hostheader":
				h := strings.ToLower(strings.TrimSpace(m.value))
				switch {
				case h == "":
					tp.problem(svc, key, "%s() needs a host name (is a variable unset?)", m.name)
					ok = false
				case strings.HasPrefix(h, "**."):
					tp.problem(svc, key, "%s(`%s`) is not supported: a wildcard covers one label, as in *.example.org", m.name, m.value)
					ok = false
				case !slices.Contains(hosts, h):
					hosts = append(hosts, h)
				}
			case "pathprefix":
				if m.value == "" {
					// Traefik refuses it; read as no path, it would
					// route the whole host.
					tp.problem(svc, key, "%s() needs a path starting with / (is a variable unset?)", m.name)
					ok = false
				} else if !slices.Contains(prefixes, m.value) {
					prefixes = append(prefixes, m.value)
				}
			default:
				msg := fmt.Sprintf("%s is not supported: ruche routes by Host and PathPrefix", m.name)
				if h := matcherHints[strings.ToLower(m.name)]; h != "" {
					msg += " (" + h + ")"
				}
				tp.problem(svc, key, "%s", msg)
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch len(hosts) {
		case 0:
			tp.problem(svc, key, "ruche routes by host: every alternative of the rule needs a Host(`...`)")
			ok = false
			continue
		case 1:
		default:
			tp.problem(svc, key, "Host(`%s`) && Host(`%s`) never matches a request", hosts[0], hosts[1])
			ok = false
			continue
		}
		prefix, fine := longestPrefix(prefixes)
		if !fine {
			tp.problem(svc, key, "PathPrefix(`%s`) && PathPrefix(`%s`) never matches a request", prefixes[0], prefixes[1])
			ok = false
			continue
		}
		pair := [2]string{hosts[0], pathPrefix(prefix)}
		if !slices.Contains(pairs, pair) {
			pairs = append(pairs, pair)
		}
	}
	return pairs, ok
}

// longestPrefix returns the prefix that PathPrefix matchers joined by &&
// amount to: the longest, when every other one is a prefix of it.
func longestPrefix(prefixes []string) (string, bool) {
	longest := ""
	for _, p := range prefixes {
		if len(p) > len(longest) {
			longest = p
		}
	}
	for _, p := range prefixes {
		if !strings.HasPrefix(longest, p) {
			return "", false
		}
	}
	return longest, true
}

// routerService finds the Traefik service a router sends to: nil (and
// true) for the implicit service Traefik makes of a container whose labels
// declare none.
func (tp *traefikProject) routerService(tl *traefikLabels, r *tObject) (*tObject, bool) {
	svc := tl.service
	ref, named := r.values["service"]
	if !named || strings.TrimSpace(ref) == "" {
		switch len(tl.services) {
		case 0:
			return nil, true
		case 1:
			for _, s := range tl.services {
				s.used = true
				return s, true
			}
		}
		tp.problem(svc, r.mainKey(), "router %s does not say which service it uses, and the labels declare several (%s): add traefik.http.routers.%s.service",
			r.name, strings.Join(sortedKeys(tl.services), ", "), r.name)
		return nil, false
	}
	key := r.keys["service"]
	name, provider := providerName(ref)
	if provider != "" {
		tp.problem(svc, key, "service %s is declared outside the compose file (@%s): ruche routes to the replicas of a compose service", ref, provider)
		return nil, false
	}
	if s, ok := tl.services[name]; ok {
		s.used = true
		return s, true
	}
	if s, ok := tp.services[name]; ok {
		s.used = true
		tp.problem(svc, key, "service %s is declared by the labels of service %s: ruche sends a route to the replicas of the service whose labels declare it; move router %s there", name, s.service, r.name)
		return nil, false
	}
	tp.problem(svc, key, "service %s is not declared: add traefik.http.services.%s.loadbalancer.server.port", name, name)
	return nil, false
}

// routerTLS sets the TLS mode of a router's routes: tls or a certificate
// resolver mean ACME; else a router on the web entrypoint only is plain
// HTTP; else the platform's default, which Traefik took from its static
// configuration.
func (tp *traefikProject) routerTLS(svc string, r *tObject, base *foundRoute) bool {
	ok := true
	plainOnly := false
	if key, has := r.keys["entrypoints"]; has {
		plainOnly = true
		for _, ep := range strings.Split(r.values["entrypoints"], ",") {
			ep = strings.ToLower(strings.TrimSpace(ep))
			switch {
			case plainEntrypoints[ep]:
			case secureEntrypoints[ep]:
				plainOnly = false
			default:
				tp.problem(svc, key, "entrypoint %q is not one of ruche's: it serves routes on web (or http: --http-addr) and websecure (or https: --https-addr)", ep)
				ok = false
			}
		}
	}
	tlsOn := false
	if key, has := r.keys["tls"]; has {
		b, err := strconv.ParseBool(strings.TrimSpace(r.values["tls"]))
		if err != nil {
			tp.problem(svc, key, "must be true or false")
			ok = false
		}
		if b {
			tlsOn, base.at.tls = true, key
		}
	}
	if key, has := r.keys["tls.certresolver"]; has && strings.TrimSpace(r.values["tls.certresolver"]) != "" {
		tlsOn, base.at.tls = true, key
	}
	switch {
	case tlsOn:
		base.spec.TLS = client.TLSACME
	case plainOnly:
		base.spec.TLS, base.at.tls = client.TLSNone, r.keys["entrypoints"]
	default:
		base.spec.TLS = client.TLSAuto
	}
	return ok
}

// responseHeaderOptions are the options of a headers middleware that only
// add response headers: hardening the browser applies, not something the
// service relies on.
var responseHeaderOptions = []string{
	"customresponseheaders.", "stsseconds", "stsincludesubdomains", "stspreload", "forcestsheader",
	"framedeny", "customframeoptionsvalue", "contenttypenosniff", "browserxssfilter",
	"custombrowserxssvalue", "contentsecuritypolicy", "contentsecuritypolicyreportonly",
	"publickey", "referrerpolicy", "permissionspolicy", "featurepolicy", "isdevelopment",
}

func isResponseHeaderOption(opt string) bool {
	for _, o := range responseHeaderOptions {
		if opt == o || strings.HasSuffix(o, ".") && strings.HasPrefix(opt, o) {
			return true
		}
	}
	return false
}

// middlewaresOf checks the middlewares of a router: a redirection to
// HTTPS is what ruche does for a route with TLS (redirect is set to the
// label that asks for it); compression and retries are warned about;
// anything else changes who reaches the service or what it gets, and is a
// problem.
func (tp *traefikProject) middlewaresOf(svc string, r *tObject, redirect *string) bool {
	key, has := r.keys["middlewares"]
	if !has {
		return true
	}
	ok := true
	for _, ref := range strings.Split(r.values["middlewares"], ",") {
		if strings.TrimSpace(ref) == "" {
			continue
		}
		name, provider := providerName(ref)
		if provider != "" {
			tp.problem(svc, key, "middleware %s is declared outside the compose file (@%s): ruche cannot apply it", strings.TrimSpace(ref), provider)
			ok = false
			continue
		}
		m, found := tp.middlewares[name]
		if !found {
			tp.problem(svc, key, "middleware %s is not declared in the labels of the project", name)
			ok = false
			continue
		}
		m.used = true
		if !tp.middleware(svc, key, m, redirect) {
			ok = false
		}
	}
	return ok
}

// middleware checks one middleware a router uses, at the router's
// middlewares label.
func (tp *traefikProject) middleware(svc, key string, m *tObject, redirect *string) bool {
	types := map[string]bool{}
	for opt := range m.values {
		typ, _, _ := strings.Cut(opt, ".")
		types[typ] = true
	}
	if len(types) != 1 {
		tp.problem(m.service, m.firstKey(), "middleware %s declares %d kinds (%s): Traefik takes one", m.name, len(types), strings.Join(sortedKeys(types), ", "))
		return false
	}
	typ := sortedKeys(types)[0]
	switch typ {
	case "redirectscheme":
		scheme := strings.ToLower(strings.TrimSpace(m.values["redirectscheme.scheme"]))
		port := strings.TrimSpace(m.values["redirectscheme.port"])
		if scheme != "https" || port != "" && port != "443" {
			to := scheme
			if port != "" {
				to += " port " + port
			}
			tp.problem(svc, key, "middleware %s redirects to %s: ruche only redirects HTTP to HTTPS, which it does for every route with TLS", m.name, to)
			return false
		}
		*redirect = key
		return true
	case "compress":
		tp.warning(svc, key, "middleware %s (compress) is not applied: ruche does not compress responses", m.name)
		return true
	case "retry":
		tp.warning(svc, key, "middleware %s (retry) is not applied: ruche retries a failed connection on another replica itself", m.name)
		return true
	case "headers":
		var cosmetic []string
		ok := true
		for _, opt := range sortedKeys(m.values) {
			o := strings.TrimPrefix(opt, "headers.")
			if isResponseHeaderOption(o) {
				label := m.keys[opt]
				cosmetic = append(cosmetic, label[len(label)-len(o):]) // as written
				continue
			}
			label := m.keys[opt]
			tp.problem(m.service, label, "headers option %s of middleware %s is not supported: it changes the requests the service gets or who may make them", label[len(label)-len(o):], m.name)
			ok = false
		}
		if ok {
			tp.warning(svc, key, "middleware %s (headers) is not applied: ruche does not add these response headers (%s)", m.name, strings.Join(cosmetic, ", "))
		}
		return ok
	}
	tp.problem(svc, key, "middleware %s (%s) is not supported by ruche: requests would reach the service without it", m.name, typ)
	return false
}

// finish reports what no router uses. Call it after routes for every
// service.
func (tp *traefikProject) finish() {
	for _, svc := range sortedKeys(tp.byService) {
		tp.unusedServices(tp.byService[svc])
	}
	for _, name := range sortedKeys(tp.middlewares) {
		if m := tp.middlewares[name]; !m.used {
			tp.warning(m.service, m.firstKey(), "middleware %s is used by no router", name)
		}
	}
}

// unusedServices reports the Traefik services of tl that no router uses,
// and a traefik.enable=true with nothing to route.
func (tp *traefikProject) unusedServices(tl *traefikLabels) {
	for _, name := range sortedKeys(tl.services) {
		s := tl.services[name]
		if s.used || tp.services[name] != s {
			continue
		}
		if len(tl.routers) == 0 {
			tp.problem(tl.service, s.firstKey(), "service %s has no router: %s", name, defaultRuleReason)
		} else {
			tp.warning(tl.service, s.firstKey(), "service %s is used by no router", name)
		}
	}
	if len(tl.routers) == 0 && len(tl.services) == 0 && tl.enable != "" {
		tp.problem(tl.service, tl.enable, "no router: %s", defaultRuleReason)
	}
}
