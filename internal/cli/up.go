package cli

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/internal/daemon"
)

func newUpCmd(g *globals) *cobra.Command { return daemonCmd(g, false) }

// daemonCmd is `ruche up` (manager and agent) or, with server, `ruche
// server` (a manager only): the same flags.
func daemonCmd(g *globals, server bool) *cobra.Command {
	cfg := daemon.Config{NoAgent: server}
	var labels []string
	var logLevel, logFormat string
	var storeFlags, checkLogs func() error
	var checkNet func() error
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the platform on this machine: manager and agent in one process",
		Long: `up runs the manager (embedded etcd on loopback, the HTTPS API with a self-generated
cluster CA, the controllers) and the agent (Docker) in one process. On first start it writes
the admin client config to <data-dir>/admin.conf (mode 0600). Stopping it leaves containers
running; the next start adopts them.

With --advertise-addr the embedded etcd listens for other managers on that address (port of
--store-peer-addr, mutual TLS with the cluster CA); without it, on loopback only. --join URL
--token T makes this machine a further manager (and node) of an existing cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			opts := &slog.HandlerOptions{Level: level}
			var h slog.Handler = slog.NewTextHandler(g.stderr, opts)
			if logFormat == "json" {
				h = slog.NewJSONHandler(g.stderr, opts)
			}
			cfg.Log = slog.New(h)
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: expected key=value", l)
				}
				cfg.Labels[k] = v
			}
			if err := checkLogs(); err != nil {
				return err
			}
			if hb := cfg.Heartbeat; hb.DownAfter <= hb.Interval {
				return fmt.Errorf("--node-down-after (%s) must be longer than --heartbeat-interval (%s): nodes would be marked down between two beats",
					hb.DownAfter, hb.Interval)
			}
			cfg.Version = Version
			if cfg.Join != "" && cfg.Token == "" {
				return fmt.Errorf("--join needs --token (made with `ruche token create --role manager` on a manager)")
			}
			if _, _, err := cfg.Ingress.ACMEChallengesOff(); err != nil {
				return err
			}
			if err := storeFlags(); err != nil {
				return err
			}
			if err := checkNet(); err != nil {
				return err
			}
			return daemon.Up(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", DefaultDataDir(), "where ruche keeps its state")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:7443", "API listen address (HTTPS)")
	in := &cfg.Ingress
	f.StringVar(&in.HTTPAddr, "http-addr", ":80", "ingress HTTP listen address (\"\" turns it off)")
	f.StringVar(&in.HTTPSAddr, "https-addr", ":443", "ingress HTTPS listen address (\"\" turns it off)")
	f.StringVar(&in.ACMEEmail, "acme-email", "", "contact e-mail for ACME; routes then get ACME certificates by default")
	f.StringVar(&in.ACMEDirectory, "acme-ca", "", "ACME directory URL (default with --acme-email: Let's Encrypt)")
	f.StringVar(&in.ACMERootFile, "acme-ca-root", "", "PEM file of a root to trust for the ACME server (private CA, tests)")
	f.StringSliceVar(&in.ACMEChallenges, "acme-challenges", []string{daemon.ACMEHTTP01, daemon.ACMETLSALPN01},
		"ACME challenge types to use: http-01 (port 80 reachable from the internet), tls-alpn-01 (port 443)")
	f.StringArrayVar(&in.TrustedProxies, "trusted-proxy", nil, "address or CIDR of a proxy in front whose X-Forwarded-For is believed (repeatable)")
	f.Float64Var(&in.RateLimit, "rate-limit", 0, "requests per second per client IP at the ingress (0: off)")
	f.IntVar(&in.RateBurst, "rate-burst", 0, "burst for --rate-limit (default: the rate)")
	f.Int64Var(&in.MaxBodyBytes, "max-body", 0, "largest request body the ingress accepts, in bytes (0: no limit)")
	f.DurationVar(&in.HoldTimeout, "hold-timeout", 5*time.Second, "how long a request waits for a ready replica before a 503")
	f.DurationVar(&in.DrainTimeout, "drain-timeout", 30*time.Second, "how long a stopping replica is drained before it is stopped anyway")
	f.BoolVar(&in.AccessLog, "access-log", false, "write the ingress access log (JSON lines) to stderr")
	f.StringVar(&cfg.StoreAddr, "store-addr", "127.0.0.1:7479", "embedded etcd client listener (loopback)")
	f.StringVar(&cfg.StorePeerAddr, "store-peer-addr", "127.0.0.1:7480", "embedded etcd peer listener (loopback)")
	storeFlags = addStoreFlags(f, &cfg.Store)
	f.StringVar(&cfg.NodeID, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "IP address other machines reach this manager and node at (default: none, a single node)")
	f.StringVar(&cfg.NodeAPIAddr, "node-api-addr", "", "node API listen address, for the other managers (default <advertise-addr>:7444; none without --advertise-addr)")
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable)")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "Docker engine address (default: DOCKER_HOST, else the default socket)")
	checkLogs = addContainerLogFlags(f, &cfg.ContainerLogs)
	// On ruche server too: the first manager settles the cluster's
	// networks, and a manager without an agent joins the mesh.
	checkNet = addNetworkFlags(f, &cfg.Net)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	f.StringVar(&cfg.Join, "join", "", "join the cluster of the manager at this URL as a manager (https://MANAGER:7443), on the first start")
	f.StringVar(&cfg.Token, "token", "", "manager join token (ruche token create --role manager)")
	f.StringVar(&cfg.CAHash, "ca-hash", "", "pin of the cluster CA (sha256:..., printed by ruche token create)")
	f.UintVar(&cfg.StoreHeartbeatMs, "store-heartbeat-ms", 0, "embedded etcd heartbeat interval in ms (0: etcd's 100)")
	f.UintVar(&cfg.StoreElectionMs, "store-election-ms", 0, "embedded etcd election timeout in ms (0: etcd's 1000); the same on every manager")
	f.DurationVar(&cfg.Heartbeat.Interval, "heartbeat-interval", time.Second, "how often agents send heartbeats (handed to them by the managers)")
	f.DurationVar(&cfg.Heartbeat.DownAfter, "node-down-after", 5*time.Second, "a node silent this long is marked down and its replicas are placed elsewhere")
	return cmd
}
