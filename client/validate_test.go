package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// validSpec is a project that passes Validate; each test case breaks it in
// one way.
func validSpec() *ProjectSpec {
	return &ProjectSpec{
		Name: "shop",
		Services: map[string]ServiceSpec{
			"web": {
				Name:     "web",
				Image:    "nginx:1.27",
				Replicas: 2,
				Ports:    []PortSpec{{Target: 80, Published: 8080, Protocol: "tcp"}},
				Mounts: []MountSpec{
					{Type: MountVolume, Source: "data", Target: "/data"},
					{Type: MountBind, Source: "/srv/conf", Target: "/etc/conf", ReadOnly: true},
					{Type: MountTmpfs, Target: "/tmp"},
					{Type: MountVolume, Target: "/anonymous"},
				},
				Healthcheck: &HealthcheckSpec{Test: []string{"CMD", "/health"}, Interval: Duration(5 * time.Second)},
				DependsOn:   map[string]DependencySpec{"db": {Condition: ConditionHealthy, Required: true}},
				Secrets:     []FileRef{{Source: "token"}},
				Configs:     []FileRef{{Source: "conf", Target: "/etc/app.yml", Mode: 0o444}},
				Networks:    map[string]ServiceNetwork{"front": {Aliases: []string{"www"}}, "default": {}},
				Resources: Resources{
					Limits:       ResourceAmounts{CPUs: 1, Memory: 256 << 20},
					Reservations: ResourceAmounts{CPUs: 0.5, Memory: 128 << 20},
				},
				RestartPolicy:  RestartPolicy{Condition: RestartOnFailure, Delay: Duration(time.Second), MaxAttempts: 3},
				UpdateConfig:   UpdateConfig{Parallelism: 1, FailureAction: FailureRollback, Order: OrderStartFirst, MaxFailureRatio: 0.5},
				RollbackConfig: UpdateConfig{FailureAction: FailurePause},
				Placement:      Placement{Constraints: []string{"node.labels.zone == home", "node.hostname!=pi"}},
				Ruche:          RucheExtension{Spread: SpreadMaxAvailability},
				Routes: []RouteSpec{
					{Host: "shop.example.org", Port: 80},
					{Host: "shop.example.org", PathPrefix: "/api", Port: 8080, TLS: TLSACME},
					{Host: "*.shops.example.org", Port: 80, TLS: TLSInternal},
				},
			},
			"db": {Name: "db", Image: "postgres:16", Replicas: 1, Ports: []PortSpec{{Target: 5432, Published: 8080, Protocol: "udp"}}},
		},
		Volumes:  map[string]VolumeSpec{"data": {Name: "data"}, "old": {Name: "legacy_data", External: true}},
		Networks: map[string]NetworkSpec{"front": {Name: "front"}, "meet.jitsi": {Name: "meet.jitsi"}},
		Secrets:  map[string]SecretSpec{"token": {Name: "token", Data: []byte("x")}},
		Configs:  map[string]ConfigSpec{"conf": {Name: "conf"}},
	}
}

// service changes one service of the spec.
func service(p *ProjectSpec, name string, f func(s *ServiceSpec)) {
	s := p.Services[name]
	f(&s)
	p.Services[name] = s
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *ProjectSpec)
		want   []string
	}{
		{"valid", func(p *ProjectSpec) {}, nil},
		{"project name", func(p *ProjectSpec) { p.Name = "My_Shop" }, []string{
			`name: "My_Shop" is not a valid project name: use lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit (it becomes a DNS name)`,
		}},
		{"no project name", func(p *ProjectSpec) { p.Name = "" }, []string{"name: a project needs a name"}},
		{"no services", func(p *ProjectSpec) { p.Services = nil }, []string{"services: a project needs at least one service"}},
		{"service names", func(p *ProjectSpec) {
			p.Services["web_app"] = ServiceSpec{Name: "web_app", Image: "x"}
			p.Services["-x"] = ServiceSpec{Name: "other", Image: "x"}
		}, []string{
			`services.-x: "-x" is not a valid service name: use lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit (the name is a DNS label, <service>.<project>.internal)`,
			`services.-x.name: is "other", must be its key "-x"`,
			`services.web_app: "web_app" is not a valid service name: use '-' instead of '_' (the name is a DNS label, <service>.<project>.internal)`,
		}},
		{"image", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) { s.Image = "" })
			service(p, "db", func(s *ServiceSpec) { s.Image = "postgres 16" })
		}, []string{
			`services.db.image: "postgres 16" is not an image reference`,
			"services.web.image: a service needs an image",
		}},
		{"replicas", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) { s.Replicas = -1 })
			service(p, "db", func(s *ServiceSpec) { s.Replicas = MaxReplicas + 1 })
		}, []string{
			"services.db.deploy.replicas: 1001 is more than the 1000 a service may have",
			"services.web.deploy.replicas: must not be negative, got -1",
		}},
		{"zero replicas is a valid scale", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) { s.Replicas = 0 })
		}, nil},
		{"ports", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Ports = append(s.Ports,
					PortSpec{Target: 0},
					PortSpec{Target: 53, Protocol: "sctp"},
					PortSpec{Target: 443, Published: 443, HostIP: "localhost"},
				)
			})
		}, []string{
			"services.web.ports[1]: target port must be between 1 and 65535",
			`services.web.ports[2]: protocol "sctp" of port 53 is not tcp or udp`,
			`services.web.ports[3]: host_ip "localhost" of port 443 is not an IP address`,
		}},
		{"published twice", func(p *ProjectSpec) {
			service(p, "db", func(s *ServiceSpec) {
				s.Ports = append(s.Ports, PortSpec{Target: 1, Published: 8080}) // tcp by default
			})
			service(p, "web", func(s *ServiceSpec) {
				s.Ports = append(s.Ports,
					PortSpec{Target: 2, Published: 9000, HostIP: "127.0.0.1"},
					PortSpec{Target: 3, Published: 9000, HostIP: "127.0.0.2"}, // another address: fine
					PortSpec{Target: 4, Published: 9000, HostIP: "0.0.0.0"},   // every address: clashes
				)
			})
		}, []string{
			"services.web.ports[0]: host port 8080/tcp is published twice (service db publishes it)",
			"services.web.ports[3]: host port 9000/tcp is published twice (this service already publishes it)",
		}},
		{"mounts", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Mounts = append(s.Mounts,
					MountSpec{Type: MountVolume, Source: "ghost", Target: "/ghost"},
					MountSpec{Type: MountVolume, Source: "data", Target: "relative"},
					MountSpec{Type: MountBind, Source: "./conf", Target: "/conf"},
					MountSpec{Type: MountTmpfs, Source: "x", Target: "/run"},
					MountSpec{Type: "npipe", Target: "/pipe"},
					MountSpec{Type: MountVolume, Source: "data", Target: "/data/"},
					MountSpec{Type: MountTmpfs, Target: "/"},
					MountSpec{Type: MountTmpfs},
					MountSpec{Type: MountBind, Source: "/var/run//docker.sock", Target: "/var/run/docker.sock"},
				)
			})
		}, []string{
			`services.web.volumes[4]: volume "ghost" is not declared in the top-level volumes`,
			`services.web.volumes[5]: target "relative" must be an absolute path`,
			`services.web.volumes[6]: bind source "./conf" must be an absolute path`,
			`services.web.volumes[7]: a tmpfs mount has no source, got "x"`,
			`services.web.volumes[8]: mount type "npipe" is not volume, bind or tmpfs`,
			`services.web.volumes[9]: target "/data/" is mounted twice`,
			`services.web.volumes[10]: target "/": cannot mount over /`,
			`services.web.volumes[11]: a tmpfs mount needs a target`,
			`services.web.volumes[12]: a replica never gets the node's Docker socket (ruche reads Traefik labels itself)`,
		}},
		{"healthcheck", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Healthcheck = &HealthcheckSpec{Test: []string{"CMD-SHELL", " "}, Interval: -1, Timeout: Duration(time.Microsecond), Retries: -2, Disable: true}
			})
			service(p, "db", func(s *ServiceSpec) { s.Healthcheck = &HealthcheckSpec{Test: []string{"curl"}} })
		}, []string{
			`services.db.healthcheck.test: must start with CMD, CMD-SHELL or NONE, got "curl"`,
			"services.web.healthcheck.test: CMD-SHELL needs a command",
			"services.web.healthcheck.disable: disable: true contradicts test",
			"services.web.healthcheck.interval: must not be negative",
			"services.web.healthcheck.timeout: must be at least 1ms (Docker's minimum)",
			"services.web.healthcheck.retries: must not be negative",
		}},
		{"healthcheck NONE with disable", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) { s.Healthcheck = &HealthcheckSpec{Test: []string{"NONE"}, Disable: true} })
		}, nil},
		{"depends_on", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.DependsOn = map[string]DependencySpec{
					"ghost": {Condition: ConditionStarted},
					"web":   {Condition: ConditionStarted},
					"db":    {Condition: "service_ready"},
				}
			})
		}, []string{
			`services.web.depends_on.db.condition: "service_ready" is not service_started, service_healthy or service_completed_successfully`,
			`services.web.depends_on.ghost: service "ghost" does not exist in the project`,
			"services.web.depends_on.web: a service cannot depend on itself",
		}},
		{"dependency cycles, each reported once", func(p *ProjectSpec) {
			dep := func(names ...string) map[string]DependencySpec {
				m := map[string]DependencySpec{}
				for _, n := range names {
					m[n] = DependencySpec{Condition: ConditionStarted}
				}
				return m
			}
			p.Services = map[string]ServiceSpec{
				"a": {Name: "a", Image: "x", DependsOn: dep("b")},
				"b": {Name: "b", Image: "x", DependsOn: dep("c")},
				"c": {Name: "c", Image: "x", DependsOn: dep("a", "d")},
				"d": {Name: "d", Image: "x", DependsOn: dep("e")},
				"e": {Name: "e", Image: "x", DependsOn: dep("d")},
				"f": {Name: "f", Image: "x", DependsOn: dep("a")},
			}
		}, []string{
			"services.c.depends_on: dependency cycle: a -> b -> c -> a",
			"services.e.depends_on: dependency cycle: d -> e -> d",
		}},
		{"secrets and configs", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Secrets = append(s.Secrets, FileRef{Source: "ghost"}, FileRef{}, FileRef{Source: "token"})
				s.Configs = append(s.Configs, FileRef{Source: "conf", Target: "/etc/other.yml", Mode: 0o10000})
			})
			p.Secrets["big"] = SecretSpec{Name: "big", Data: make([]byte, MaxFileData+1)}
			p.Configs["bad/name"] = ConfigSpec{Name: "wrong"}
		}, []string{
			`configs.bad/name: "bad/name" is not a valid name: use letters, digits, '_', '.' and '-', at most 63, starting with a letter or digit`,
			`configs.bad/name.name: is "wrong", must be its key "bad/name"`,
			"secrets.big: content is 524289 bytes, more than the 524288 allowed",
			`services.web.secrets[1]: secret "ghost" is not declared in the top-level secrets`,
			"services.web.secrets[2]: a secret reference needs a source",
			`services.web.secrets[3]: secret target "token" is used twice`,
			`services.web.configs[1]: mode 010000 of config "conf" is not a file mode`,
		}},
		{"networks", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Networks["back"] = ServiceNetwork{}
				s.Networks["front"] = ServiceNetwork{Aliases: []string{"ok.alias", "bad alias"}}
			})
		}, []string{
			`services.web.networks.back: network "back" is not declared in the top-level networks`,
			`services.web.networks.front.aliases: "bad alias" is not a valid DNS name`,
		}},
		{"volumes", func(p *ProjectSpec) {
			p.Volumes["data"] = VolumeSpec{Name: "shop_data"}
			p.Volumes["old"] = VolumeSpec{Name: "", External: true, Driver: "local"}
		}, []string{
			`volumes.data.name: is "shop_data", must be its key "data" (only external volumes name a Docker volume of their own)`,
			`volumes.old.name: "" is not a valid Docker volume name`,
			"volumes.old.driver: an external volume exists already: it takes no driver or driver_opts",
		}},
		{"resources", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Resources = Resources{
					Limits:       ResourceAmounts{CPUs: 0.5, Memory: 1 << 20},
					Reservations: ResourceAmounts{CPUs: 1, Memory: -1},
				}
			})
			service(p, "db", func(s *ServiceSpec) {
				s.Resources = Resources{Limits: ResourceAmounts{CPUs: -1, Memory: 64 << 20}, Reservations: ResourceAmounts{Memory: 128 << 20}}
			})
		}, []string{
			"services.db.deploy.resources.limits.cpus: must not be negative",
			"services.db.deploy.resources.reservations.memory: reserves more (134217728 bytes) than the limit (67108864 bytes)",
			"services.web.deploy.resources.reservations.memory: must not be negative",
			"services.web.deploy.resources.limits.memory: 1048576 bytes is below Docker's minimum of 6MiB",
			"services.web.deploy.resources.reservations.cpus: reserves more (1) than the limit (0.5)",
		}},
		{"restart and update", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.RestartPolicy = RestartPolicy{Condition: "always", Delay: -1, Window: -1, MaxAttempts: -1}
				s.UpdateConfig = UpdateConfig{Parallelism: -1, Delay: -1, Monitor: -1, FailureAction: "retry", MaxFailureRatio: 1.5, Order: "random"}
				s.RollbackConfig = UpdateConfig{FailureAction: FailureRollback}
				s.StopGracePeriod = -1
			})
		}, []string{
			"services.web.stop_grace_period: must not be negative",
			`services.web.deploy.restart_policy.condition: "always" is not none, on-failure or any`,
			"services.web.deploy.restart_policy.delay: must not be negative",
			"services.web.deploy.restart_policy.window: must not be negative",
			"services.web.deploy.restart_policy.max_attempts: must not be negative",
			"services.web.deploy.update_config.parallelism: must not be negative",
			"services.web.deploy.update_config.delay: must not be negative",
			"services.web.deploy.update_config.monitor: must not be negative",
			`services.web.deploy.update_config.failure_action: "retry" is not rollback, pause or continue`,
			"services.web.deploy.update_config.max_failure_ratio: 1.5 is not between 0 and 1",
			`services.web.deploy.update_config.order: "random" is not stop-first or start-first`,
			"services.web.deploy.rollback_config.failure_action: a rollback that fails cannot roll back: use pause or continue",
		}},
		{"placement and spread", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Placement.Constraints = []string{"zone=home", "node.color == red", "node.labels.zone ==", "node.labels.a == b == c"}
				s.Ruche.Spread = "everywhere"
			})
		}, []string{
			`services.web.deploy.placement.constraints[0]: "zone=home": a constraint reads <attribute> == <value> or <attribute> != <value>`,
			`services.web.deploy.placement.constraints[1]: "node.color == red": "node.color" is not node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>`,
			`services.web.deploy.placement.constraints[2]: "node.labels.zone ==": the value is missing or malformed`,
			`services.web.deploy.placement.constraints[3]: "node.labels.a == b == c": the value is missing or malformed`,
			`services.web.x-ruche.spread: "everywhere" is not a spread mode (use "max_availability" or leave it out)`,
		}},
		{"other service fields", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.WorkingDir = "srv"
				s.Hostname = "not a host"
				s.Environment = map[string]string{"A=B": "x", "": "y", "OK": "z"}
			})
		}, []string{
			`services.web.environment: "" is not a valid variable name`,
			`services.web.environment: "A=B" is not a valid variable name`,
			`services.web.working_dir: "srv" must be an absolute path`,
			`services.web.hostname: "not a host" is not a valid host name`,
		}},
		{"route hosts", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Routes = append(s.Routes,
					RouteSpec{Port: 80},
					RouteSpec{Host: "bad_host.example.org", Port: 80},
					RouteSpec{Host: "Other.Example.org", Port: 80},
					RouteSpec{Host: "a.*.example.org", Port: 80, TLS: TLSNone},
					RouteSpec{Host: "**.example.org", Port: 80, TLS: TLSNone},
					RouteSpec{Host: "*.example.org", Port: 80},
					RouteSpec{Host: "*.acme.example.org", Port: 80, TLS: TLSACME},
					RouteSpec{Host: "*.", Port: 80, TLS: TLSNone},
					RouteSpec{Host: "192.168.1.10", Port: 80},
					RouteSpec{Host: "example.org.", Port: 80},
					RouteSpec{Host: strings.Repeat("a", 64) + ".example.org", Port: 80},
				)
			})
		}, []string{
			"services.web.routes[3].host: a route needs a host",
			`services.web.routes[4].host: "bad_host.example.org" is not a valid DNS name`,
			`services.web.routes[5].host: "Other.Example.org": write host names in lowercase`,
			`services.web.routes[6].host: "a.*.example.org" is not a valid host: a wildcard is one * as the first label, as in *.example.org`,
			`services.web.routes[7].host: "**.example.org" is not a valid host: a wildcard is one * as the first label, as in *.example.org`,
			`services.web.routes[8].host: wildcard host "*.example.org" needs tls internal, files or none: ACME certificates for wildcards need DNS-01, which ruche does not do yet`,
			`services.web.routes[9].host: wildcard host "*.acme.example.org" needs tls internal, files or none: ACME certificates for wildcards need DNS-01, which ruche does not do yet`,
			`services.web.routes[10].host: "*." is not a valid DNS name`,
			`services.web.routes[11].host: "192.168.1.10" is an IP address: a route needs a host name`,
			`services.web.routes[12].host: "example.org." is not a valid DNS name`,
			`services.web.routes[13].host: "` + strings.Repeat("a", 64) + `.example.org" is not a valid DNS name`,
		}},
		{"single-label and wildcard hosts", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Routes = append(s.Routes,
					RouteSpec{Host: "localhost", Port: 80},
					RouteSpec{Host: "*.none.example.org", Port: 80, TLS: TLSNone},
					RouteSpec{Host: "xn--bcher-kva.example", Port: 80},
				)
			})
		}, nil},
		{"route paths, ports and TLS modes", func(p *ProjectSpec) {
			service(p, "web", func(s *ServiceSpec) {
				s.Routes = append(s.Routes,
					RouteSpec{Host: "a.example.org", PathPrefix: "api", Port: 80},
					RouteSpec{Host: "b.example.org", PathPrefix: "/a b", Port: 80},
					RouteSpec{Host: "c.example.org", PathPrefix: "/a?b=1", Port: 80},
					RouteSpec{Host: "d.example.org", PathPrefix: "/#top", Port: 80},
					RouteSpec{Host: "e.example.org"},
					RouteSpec{Host: "f.example.org", Port: 80, TLS: "letsencrypt"},
					RouteSpec{Host: "g.example.org", Port: 80, TLS: TLSACME, Cert: []byte("x")},
				)
			})
		}, []string{
			`services.web.routes[3].path_prefix: "api" must start with /`,
			`services.web.routes[4].path_prefix: "/a b" is not a URL path: no spaces, ? or #`,
			`services.web.routes[5].path_prefix: "/a?b=1" is not a URL path: no spaces, ? or #`,
			`services.web.routes[6].path_prefix: "/#top" is not a URL path: no spaces, ? or #`,
			"services.web.routes[7].port: port must be between 1 and 65535",
			`services.web.routes[8].tls: "letsencrypt" is not a TLS mode (acme, internal, files or none, or leave it out)`,
			`services.web.routes[9].cert: a certificate and key are given, but tls is "acme", not "files"`,
		}},
		{"route certificate files", func(p *ProjectSpec) {
			cert, key := testPair(t, "files.example.org", "*.files.example.org")
			otherCert, otherKey := testPair(t, "other.example.org")
			service(p, "web", func(s *ServiceSpec) {
				s.Routes = append(s.Routes,
					RouteSpec{Host: "files.example.org", Port: 80, TLS: TLSFiles, Cert: cert, Key: key},
					RouteSpec{Host: "*.files.example.org", Port: 80, TLS: TLSFiles, Cert: cert, Key: key},
					RouteSpec{Host: "a.example.org", Port: 80, TLS: TLSFiles},
					RouteSpec{Host: "b.example.org", Port: 80, TLS: TLSFiles, Key: key},
					RouteSpec{Host: "c.example.org", Port: 80, TLS: TLSFiles, Cert: cert},
					RouteSpec{Host: "files.example.org", PathPrefix: "/x", Port: 80, TLS: TLSFiles, Cert: cert, Key: otherKey},
					RouteSpec{Host: "other.example.org", Port: 80, TLS: TLSFiles, Cert: []byte("not PEM"), Key: []byte("nor this")},
					RouteSpec{Host: "wrong.example.org", Port: 80, TLS: TLSFiles, Cert: otherCert, Key: otherKey},
					RouteSpec{Host: "*.other.example.org", Port: 80, TLS: TLSFiles, Cert: otherCert, Key: otherKey},
					RouteSpec{Host: "big.example.org", Port: 80, TLS: TLSFiles, Cert: make([]byte, MaxFileData+1), Key: key},
				)
			})
		}, []string{
			"services.web.routes[5].cert: tls files needs a certificate and its key",
			"services.web.routes[6].cert: tls files needs a certificate",
			"services.web.routes[7].key: tls files needs the certificate's key",
			"services.web.routes[8].cert: certificate and key are not a PEM pair that matches: tls: private key does not match public key",
			"services.web.routes[9].cert: certificate and key are not a PEM pair that matches: tls: failed to find any PEM data in certificate input",
			"services.web.routes[10].cert: the certificate does not cover wrong.example.org (it names other.example.org)",
			"services.web.routes[11].cert: the certificate does not cover *.other.example.org (it names other.example.org)",
			"services.web.routes[12].cert: certificate is 524289 bytes, more than the 524288 allowed",
		}},
		{"routes twice and TLS per host", func(p *ProjectSpec) {
			cert, key := testPair(t, "shop.example.org")
			service(p, "db", func(s *ServiceSpec) {
				s.Routes = []RouteSpec{
					{Host: "shop.example.org", PathPrefix: "/api", Port: 5432, Source: "label ruche.route"},
					{Host: "shop.example.org", PathPrefix: "/", Port: 5432},
					{Host: "shop.example.org", PathPrefix: "/db", Port: 5432, TLS: TLSNone},
					{Host: "shop.example.org", PathPrefix: "/files", Port: 5432, TLS: TLSFiles, Cert: cert, Key: key},
					{Host: "x.example.org", Port: 1, Source: "x-ruche.routes[4]"},
					{Host: "x.example.org", PathPrefix: "/", Port: 2},
					{Host: "x.example.org", Port: 3},
					{Host: "x.example.org", PathPrefix: "/a/", Port: 4},
					{Host: "x.example.org", PathPrefix: "/a", Port: 5},
				}
			})
		}, []string{
			"services.db.routes[3].tls: host shop.example.org has tls files here but none on service db: the routes of a host share its TLS",
			"services.db.routes[5]: host x.example.org is routed twice (x-ruche.routes[4] of this service routes it already)",
			"services.db.routes[6]: host x.example.org is routed twice (x-ruche.routes[4] of this service routes it already)",
			"services.db.routes[8]: host x.example.org path /a is routed twice (routes[7] of this service routes it already)",
			"services.web.routes[0]: host shop.example.org is routed twice (service db routes it too)",
			"services.web.routes[1]: host shop.example.org path /api is routed twice (service db routes it too, from label ruche.route)",
		}},
		{"two certificates for one host", func(p *ProjectSpec) {
			cert, key := testPair(t, "shop.example.org")
			otherCert, otherKey := testPair(t, "shop.example.org")
			service(p, "db", func(s *ServiceSpec) {
				s.Routes = []RouteSpec{
					{Host: "shop.example.org", PathPrefix: "/a", Port: 1, TLS: TLSFiles, Cert: cert, Key: key},
					{Host: "shop.example.org", PathPrefix: "/b", Port: 1, TLS: TLSFiles, Cert: cert, Key: key},
					{Host: "shop.example.org", PathPrefix: "/c", Port: 1, TLS: TLSFiles, Cert: otherCert, Key: otherKey},
				}
			})
			service(p, "web", func(s *ServiceSpec) { s.Routes = nil })
		}, []string{
			"services.db.routes[2].cert: host shop.example.org has another certificate on service db: the routes of a host share its certificate",
		}},
		{"a route seen twice without a source, TLS across services", func(p *ProjectSpec) {
			service(p, "db", func(s *ServiceSpec) {
				s.Routes = []RouteSpec{
					{Host: "db.example.org", Port: 1},
					{Host: "db.example.org", Port: 2},
					{Host: "web.example.org", PathPrefix: "/db", Port: 3, TLS: TLSNone},
					{Host: "shop.example.org", PathPrefix: "/db", Port: 3, TLS: TLSACME},
				}
			})
			service(p, "web", func(s *ServiceSpec) {
				s.Routes = append(s.Routes, RouteSpec{Host: "web.example.org", Port: 80, TLS: TLSInternal})
			})
		}, []string{
			"services.db.routes[1]: host db.example.org is routed twice (routes[0] of this service routes it already)",
			"services.web.routes[3].tls: host web.example.org has tls internal here but none on service db: the routes of a host share its TLS",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validSpec()
			tt.change(p)
			err := p.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("got %v, want a *ValidationError", err)
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("errors.Is(err, ErrInvalidSpec) = false")
			}
			got := slices.Clone(verr.Problems)
			// Environment keys come from a map: compare that part sorted.
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
		})
	}
}

// TestValidateOrderIsStable checks that problems come out in the same order
// on every call, whatever the order of map iteration.
func TestValidateOrderIsStable(t *testing.T) {
	p := validSpec()
	for _, name := range []string{"a_1", "b_2", "c_3", "d_4", "e_5"} {
		p.Services[name] = ServiceSpec{Name: name, Image: "", Replicas: -1}
	}
	first := p.Validate().Error()
	for range 20 {
		if got := p.Validate().Error(); got != first {
			t.Fatalf("order changed:\n%s\nthen\n%s", first, got)
		}
	}
}

func TestValidateDoesNotChangeTheSpec(t *testing.T) {
	p := validSpec()
	service(p, "web", func(s *ServiceSpec) { s.Replicas = -1 })
	before := validSpec()
	service(before, "web", func(s *ServiceSpec) { s.Replicas = -1 })
	_ = p.Validate()
	if got, want := p.Services["web"].Replicas, before.Services["web"].Replicas; got != want {
		t.Errorf("replicas: got %d, want %d", got, want)
	}
}

func TestValidationErrorFormat(t *testing.T) {
	err := &ValidationError{Problems: []string{"a: one", "b: two"}}
	if got, want := err.Error(), "a: one\nb: two"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// testPair returns a self-signed certificate for names and its key, in PEM.
func testPair(t *testing.T, names ...string) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
