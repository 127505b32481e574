package cli

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/internal/daemon"
)

func newUpCmd(g *globals) *cobra.Command {
	cfg := daemon.Config{}
	var labels []string
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the platform on this machine: manager and agent in one process",
		Long: `up runs the manager (embedded etcd on loopback, the HTTPS API with a self-generated
cluster CA, the controllers) and the agent (Docker) in one process. On first start it writes
the admin client config to <data-dir>/admin.conf (mode 0600). Stopping it leaves containers
running; the next start adopts them.`,
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
			cfg.Version = Version
			return daemon.Up(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", DefaultDataDir(), "where ruche keeps its state")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:7443", "API listen address (HTTPS)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "", "ingress HTTP listen address (not served by this version yet)")
	f.StringVar(&cfg.HTTPSAddr, "https-addr", "", "ingress HTTPS listen address (not served by this version yet)")
	f.StringVar(&cfg.StoreAddr, "store-addr", "127.0.0.1:7479", "embedded etcd client listener (loopback)")
	f.StringVar(&cfg.StorePeerAddr, "store-peer-addr", "127.0.0.1:7480", "embedded etcd peer listener (loopback)")
	f.StringVar(&cfg.NodeID, "node-name", "", "this node's name (default: the host name)")
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable)")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "Docker engine address (default: DOCKER_HOST, else the default socket)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
