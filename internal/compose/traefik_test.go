package compose

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// traefikOf reads the labels of one service "web" and returns its routes
// (spec only) and every message, as "label: text" or "warn label: text".
func traefikOf(labels map[string]string) ([]client.RouteSpec, []string) {
	tp := readTraefik(map[string]map[string]string{"web": labels})
	found := tp.routes("web")
	tp.finish()
	var routes []client.RouteSpec
	for _, f := range found {
		if f.needsPort {
			f.spec.Port = 0
		}
		routes = append(routes, f.spec)
	}
	var msgs []string
	for _, m := range tp.msgs {
		s := m.label + ": " + m.text
		if m.warn {
			s = "warn " + s
		}
		msgs = append(msgs, s)
	}
	return routes, msgs
}

func TestTraefikRoutes(t *testing.T) {
	const (
		rule  = "traefik.http.routers.r.rule"
		port  = "traefik.http.services.s.loadbalancer.server.port"
		entry = "traefik.http.routers.r.entrypoints"
	)
	route := func(host, path string, port uint16, tls, source string) client.RouteSpec {
		return client.RouteSpec{Host: host, PathPrefix: path, Port: port, TLS: tls, Source: source}
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   []client.RouteSpec
		msgs   []string
	}{
		{
			name:   "one host, implicit service: the port is left to the service's container ports",
			labels: map[string]string{rule: "Host(`A.example.org`)"},
			want:   []client.RouteSpec{route("a.example.org", "", 0, client.TLSAuto, "traefik router r")},
		},
		{
			name:   "hosts and prefixes in every combination",
			labels: map[string]string{rule: "(Host(`a.org`) || Host(`b.org`)) && PathPrefix(`/x`) || Host(`c.org`) && PathPrefix(`/`)", port: "8080"},
			want: []client.RouteSpec{
				route("a.org", "/x", 8080, "", "traefik router r"),
				route("b.org", "/x", 8080, "", "traefik router r"),
				route("c.org", "", 8080, "", "traefik router r"),
			},
		},
		{
			name:   "a repeated alternative is one route",
			labels: map[string]string{rule: "Host(`a.org`) || Host(`A.org`) || Host(`a.org`) && Host(`a.org`)", port: "80"},
			want:   []client.RouteSpec{route("a.org", "", 80, "", "traefik router r")},
		},
		{
			name:   "nested prefixes joined by && are the longest",
			labels: map[string]string{rule: "PathPrefix(`/a`) && Host(`a.org`) && PathPrefix(`/a/b`)", port: "80"},
			want:   []client.RouteSpec{route("a.org", "/a/b", 80, "", "traefik router r")},
		},
		{
			name:   "tls=true is ACME",
			labels: map[string]string{rule: "Host(`a.org`)", port: "80", "traefik.http.routers.r.tls": "true"},
			want:   []client.RouteSpec{route("a.org", "", 80, client.TLSACME, "traefik router r")},
		},
		{
			name:   "a certificate resolver is ACME, even with tls=false",
			labels: map[string]string{rule: "Host(`a.org`)", port: "80", "traefik.http.routers.r.tls": "false", "traefik.http.routers.r.tls.certResolver": "le"},
			want:   []client.RouteSpec{route("a.org", "", 80, client.TLSACME, "traefik router r")},
		},
		{
			name:   "a router on web only is plain HTTP",
			labels: map[string]string{rule: "Host(`a.org`)", port: "80", entry: "web, http"},
			want:   []client.RouteSpec{route("a.org", "", 80, client.TLSNone, "traefik router r")},
		},
		{
			name:   "a router on websecure without tls takes the platform's default",
			labels: map[string]string{rule: "Host(`a.org`)", port: "80", entry: "web,websecure"},
			want:   []client.RouteSpec{route("a.org", "", 80, client.TLSAuto, "traefik router r")},
		},
		{
			name: "an HTTP router redirecting and an HTTPS router make one route with TLS",
			labels: map[string]string{
				"traefik.http.routers.a-http.rule":                        "Host(`a.org`)",
				"traefik.http.routers.a-http.entrypoints":                 "web",
				"traefik.http.routers.a-http.middlewares":                 "https@docker",
				"traefik.http.middlewares.https.redirectscheme.scheme":    "https",
				"traefik.http.middlewares.https.redirectscheme.permanent": "true",
				"traefik.http.routers.a.rule":                             "Host(`a.org`)",
				"traefik.http.routers.a.entrypoints":                      "websecure",
				"traefik.http.routers.a.tls.certresolver":                 "le",
				port: "80",
			},
			want: []client.RouteSpec{route("a.org", "", 80, client.TLSACME, "traefik routers a and a-http")},
		},
		{
			name: "a redirection to HTTPS on a route without TLS is warned about",
			labels: map[string]string{
				rule: "Host(`a.org`)", port: "80", entry: "web",
				"traefik.http.routers.r.middlewares":                   "https",
				"traefik.http.middlewares.https.redirectscheme.scheme": "https",
				"traefik.http.middlewares.https.redirectscheme.port":   "443",
			},
			want: []client.RouteSpec{route("a.org", "", 80, client.TLSNone, "traefik router r")},
			msgs: []string{"warn traefik.http.routers.r.middlewares: traefik router r redirects to HTTPS, but has no TLS (its routers are on web only, without tls): ruche serves a.org over plain HTTP"},
		},
		{
			name: "a redirection on one of two plain routers merged is warned about",
			labels: map[string]string{
				"traefik.http.routers.a.rule": "Host(`a.org`)", "traefik.http.routers.a.entrypoints": "web",
				"traefik.http.routers.a.middlewares":                   "https",
				"traefik.http.routers.b.rule":                          "Host(`a.org`)",
				"traefik.http.routers.b.entrypoints":                   "http",
				"traefik.http.middlewares.https.redirectscheme.scheme": "https",
				port: "80",
			},
			want: []client.RouteSpec{route("a.org", "", 80, client.TLSNone, "traefik routers a and b")},
			msgs: []string{"warn traefik.http.routers.a.middlewares: traefik routers a and b redirects to HTTPS, but has no TLS (its routers are on web only, without tls): ruche serves a.org over plain HTTP"},
		},
		{
			name: "two routers for the same host and path to different ports",
			labels: map[string]string{
				"traefik.http.routers.a.rule": "Host(`a.org`)", "traefik.http.routers.a.service": "one",
				"traefik.http.routers.b.rule": "Host(`a.org`)", "traefik.http.routers.b.service": "two",
				"traefik.http.services.one.loadbalancer.server.port": "80",
				"traefik.http.services.two.loadbalancer.server.port": "81",
			},
			want: []client.RouteSpec{route("a.org", "", 80, "", "traefik router a")},
			msgs: []string{"traefik.http.routers.b.rule: traefik router b routes a.org like traefik router a, but to another port"},
		},
		{
			name:   "traefik.enable=false: no route and no message",
			labels: map[string]string{"traefik.enable": "False", rule: "Host(`a.org`)", "traefik.http.routers.r.middlewares": "auth"},
		},
		{
			name: "options ruche does its own way are warnings",
			labels: map[string]string{
				rule: "Host(`a.org`)", port: "80", "traefik.http.routers.r.service": "s",
				"traefik.docker.network":                                                "proxy",
				"traefik.docker.lbswarm":                                                "true",
				"traefik.http.routers.r.priority":                                       "10",
				"traefik.http.routers.r.tls.options":                                    "modern@file",
				"traefik.http.routers.r.tls.domains[0].sans":                            "*.a.org",
				"traefik.http.routers.r.observability.accesslogs":                       "false",
				"traefik.http.routers.r.ruleSyntax":                                     "v2",
				"traefik.http.routers.r.middlewares":                                    "gz,retry,hdr",
				"traefik.http.middlewares.gz.compress":                                  "true",
				"traefik.http.middlewares.retry.retry.attempts":                         "3",
				"traefik.http.middlewares.hdr.headers.stsSeconds":                       "1",
				"traefik.http.middlewares.hdr.headers.referrerPolicy":                   "no-referrer",
				"traefik.http.middlewares.unused.compress":                              "true",
				"traefik.http.services.s.loadbalancer.healthcheck.path":                 "/health",
				"traefik.http.services.s.loadbalancer.strategy":                         "wrr",
				"traefik.http.services.s.loadbalancer.passhostheader":                   "true",
				"traefik.http.services.s.loadbalancer.server.scheme":                    "HTTP",
				"traefik.http.services.s.loadbalancer.responseforwarding.flushinterval": "100ms",
				"traefik.http.services.spare.loadbalancer.server.port":                  "81",
			},
			want: []client.RouteSpec{route("a.org", "", 80, "", "traefik router r")},
			msgs: []string{
				"warn traefik.docker.lbswarm: not used: ruche balances over the replicas itself",
				"warn traefik.docker.network: not used: ruche reaches replicas on their project network itself",
				"warn traefik.http.routers.r.observability.accesslogs: not used: ruche's access log and metrics cover every route",
				"warn traefik.http.routers.r.priority: not used: ruche picks, among the routes of a host, the one with the longest matching path prefix",
				"warn traefik.http.routers.r.tls.domains[0].sans: not used: ruche obtains a certificate for each host a rule names",
				"warn traefik.http.routers.r.tls.options: not used: ruche serves TLS with its own settings",
				"warn traefik.http.services.s.loadbalancer.healthcheck.path: not used: ruche checks the health of replicas itself (their healthcheck, and the proxy's own checks)",
				"warn traefik.http.services.s.loadbalancer.responseforwarding.flushinterval: not used: ruche's proxy decides when to flush responses",
				"warn traefik.http.services.s.loadbalancer.strategy: not used: ruche sends a request to the least busy of two random ready replicas",
				"warn traefik.http.routers.r.middlewares: middleware gz (compress) is not applied: ruche does not compress responses",
				"warn traefik.http.routers.r.middlewares: middleware retry (retry) is not applied: ruche retries a failed connection on another replica itself",
				"warn traefik.http.routers.r.middlewares: middleware hdr (headers) is not applied: ruche does not add these response headers (referrerPolicy, stsSeconds)",
				"warn traefik.http.services.spare.loadbalancer.server.port: service spare is used by no router",
				"warn traefik.http.middlewares.unused.compress: middleware unused is used by no router",
			},
		},
		{
			name:   "an empty PathPrefix is a problem, not a route for the whole host",
			labels: map[string]string{rule: "Host(`a.org`) && PathPrefix()", port: "80"},
			msgs:   []string{"traefik.http.routers.r.rule: PathPrefix() needs a path starting with / (is a variable unset?)"},
		},
		{
			name:   "an empty PathPrefix value too",
			labels: map[string]string{rule: "Host(`a.org`) && PathPrefix(``)", port: "80"},
			msgs:   []string{"traefik.http.routers.r.rule: PathPrefix() needs a path starting with / (is a variable unset?)"},
		},
		{
			name: "a router that does not name one of several services",
			labels: map[string]string{
				rule: "Host(`a.org`)", port: "80",
				"traefik.http.services.spare.loadbalancer.server.port": "81",
			},
			msgs: []string{
				"traefik.http.routers.r.rule: router r does not say which service it uses, and the labels declare several (s, spare): add traefik.http.routers.r.service",
				"warn traefik.http.services.s.loadbalancer.server.port: service s is used by no router",
				"warn traefik.http.services.spare.loadbalancer.server.port: service spare is used by no router",
			},
		},
		{
			name: "what would change the requests, their answers or who may make them is a problem",
			labels: map[string]string{
				rule: "Host(`a.org`) && Query(`debug`, `1`) || ClientIP(`10.0.0.0/8`) && Host(`b.org`)", "traefik.http.routers.r.service": "s", port: "0",
				"traefik.http.routers.r.middlewares":                                "auth,limit,chain,to-http,https-8443,twice,hdr",
				"traefik.http.routers.r.tls":                                        "maybe",
				"traefik.http.routers.r.entrypoints":                                "websecure,admin",
				"traefik.http.routers.r.unknown":                                    "x",
				"traefik.http.middlewares.auth.forwardauth.address":                 "http://auth",
				"traefik.http.middlewares.limit.ratelimit.average":                  "10",
				"traefik.http.middlewares.chain.chain.middlewares":                  "auth",
				"traefik.http.middlewares.to-http.redirectscheme.scheme":            "http",
				"traefik.http.middlewares.https-8443.redirectscheme.scheme":         "https",
				"traefik.http.middlewares.https-8443.redirectscheme.port":           "8443",
				"traefik.http.middlewares.twice.compress":                           "true",
				"traefik.http.middlewares.twice.stripprefix.prefixes":               "/x",
				"traefik.http.middlewares.hdr.headers.accessControlAllowOriginList": "*",
				"traefik.http.services.s.loadbalancer.passhostheader":               "false",
				"traefik.http.services.s.loadbalancer.serverstransport":             "insecure@file",
				"traefik.http.services.s.loadbalancer.unknown":                      "x",
				"traefik.udp.routers.dns.service":                                   "dns",
				"traefik.docker.unknown":                                            "x",
				"traefik.http.routers":                                              "x",
				"traefik.http.middlewares..compress":                                "true",
			},
			msgs: []string{
				"traefik.docker.unknown: not a Traefik label ruche knows",
				"traefik.http.middlewares..compress: not a Traefik label ruche knows (traefik.http.<routers|services|middlewares>.<name>.<option>)",
				"traefik.http.routers: not a Traefik label ruche knows (traefik.http.<routers|services|middlewares>.<name>.<option>)",
				"traefik.http.routers.r.unknown: not a Traefik router option ruche knows (it reads rule, service, entrypoints, middlewares, tls and tls.certresolver)",
				"traefik.http.services.s.loadbalancer.passhostheader: ruche always passes the Host header to replicas",
				"traefik.http.services.s.loadbalancer.serverstransport: servers transports are not supported: ruche speaks plain HTTP to replicas",
				"traefik.http.services.s.loadbalancer.unknown: not a Traefik service option ruche knows (it reads loadbalancer.server.port)",
				"traefik.udp.routers.dns.service: Traefik UDP routers are not supported: ruche routes HTTP; publish the port with ports: instead",
				"traefik.http.routers.r.rule: Query is not supported: ruche routes by Host and PathPrefix",
				"traefik.http.routers.r.rule: ClientIP is not supported: ruche routes by Host and PathPrefix (ruche does not restrict clients by address)",
				`traefik.http.services.s.loadbalancer.server.port: "0" is not a port between 1 and 65535`,
				`traefik.http.routers.r.entrypoints: entrypoint "admin" is not one of ruche's: it serves routes on web (or http: --http-addr) and websecure (or https: --https-addr)`,
				"traefik.http.routers.r.tls: must be true or false",
				"traefik.http.routers.r.middlewares: middleware auth (forwardauth) is not supported by ruche: requests would reach the service without it",
				"traefik.http.routers.r.middlewares: middleware limit (ratelimit) is not supported by ruche: requests would reach the service without it",
				"traefik.http.routers.r.middlewares: middleware chain (chain) is not supported by ruche: requests would reach the service without it",
				"traefik.http.routers.r.middlewares: middleware to-http redirects to http: ruche only redirects HTTP to HTTPS, which it does for every route with TLS",
				"traefik.http.routers.r.middlewares: middleware https-8443 redirects to https port 8443: ruche only redirects HTTP to HTTPS, which it does for every route with TLS",
				"traefik.http.middlewares.twice.compress: middleware twice declares 2 kinds (compress, stripprefix): Traefik takes one",
				"traefik.http.middlewares.hdr.headers.accessControlAllowOriginList: headers option accessControlAllowOriginList of middleware hdr is not supported: it changes the requests the service gets or who may make them",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msgs := traefikOf(tt.labels)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("routes:\ngot  %+v\nwant %+v", got, tt.want)
			}
			if !slices.Equal(msgs, tt.msgs) {
				t.Errorf("messages:\ngot  %s\nwant %s", strings.Join(msgs, "\n     "), strings.Join(tt.msgs, "\n     "))
			}
		})
	}
}
