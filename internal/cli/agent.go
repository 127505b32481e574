package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/internal/daemon"
)

func newAgentCmd(g *globals) *cobra.Command {
	cfg := daemon.AgentConfig{}
	var labels []string
	var logLevel, logFormat string
	var checkLogs, checkNet func() error
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run this machine as a node of a cluster: join it once, then run its replicas",
		Long: `agent runs the replicas the managers assign to this machine, on its Docker engine
(DOCKER_HOST, else the default socket). It talks to the managers over mutual TLS only.

The first start joins the cluster with a token made on a manager by
` + "`ruche token create`" + `, which prints the whole command:

  ruche agent --join https://MANAGER:7443 --token ruchejoin_... --ca-hash sha256:...

--ca-hash pins the cluster CA: the token is sent only to a manager that proves it holds a
certificate of that CA. Without it the CA is trusted on first use (its hash is logged):
compare it with the one ` + "`ruche token create`" + ` prints.

The node's identity (node.crt, node.key, ca.crt, agent.json) is kept in --data-dir; later
starts need no --join. A machine that also runs ` + "`ruche up`" + ` needs another --data-dir
for its agent (and another --node-name), and a cluster on Docker's networks (--networks docker
on its first manager): ruche's own networks are one ruche's per machine.

The node follows the cluster's replica networks (Docker's, or ruche's own over a WireGuard
mesh between the nodes' advertise addresses, UDP --mesh-port).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(g, logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Log = log
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if err := checkLogs(); err != nil {
				return err
			}
			if err := checkNet(); err != nil {
				return err
			}
			if cfg.Token == "" {
				cfg.Token = os.Getenv("RUCHE_JOIN_TOKEN")
			}
			cfg.Version = Version
			return daemon.RunAgent(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Join, "join", "", "a manager's API URL (https://MANAGER:7443), for the first start")
	f.StringVar(&cfg.Token, "token", "", "join token (ruche token create on a manager); default $RUCHE_JOIN_TOKEN, which keeps it out of the process list")
	f.StringVar(&cfg.CAHash, "ca-hash", "", "expected cluster CA hash (sha256:...), as ruche token create prints it")
	f.StringArrayVar(&labels, "label", nil, "node label key=value (repeatable)")
	f.StringVar(&cfg.DataDir, "data-dir", DefaultDataDir(), "where the node keeps its identity and state")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "IP address the managers and other nodes reach this node at (default: the address it reaches the manager from)")
	f.StringVar(&cfg.NodeName, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&cfg.NodeAPIAddr, "node-api-addr", "", "node API listen address (default <advertise-addr>:7444)")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics over plain HTTP here, e.g. 10.0.0.2:9464 (default: off)")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "Docker engine address (default: DOCKER_HOST, else the default socket)")
	checkLogs = addContainerLogFlags(f, &cfg.ContainerLogs)
	agentIngressFlags(cmd, &cfg.Ingress)
	checkNet = addNetworkFlags(f, &cfg.Net)
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}

// newLogger is the daemons' logger on stderr.
func newLogger(g *globals, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewTextHandler(g.stderr, opts)
	if format == "json" {
		h = slog.NewJSONHandler(g.stderr, opts)
	}
	return slog.New(h), nil
}

func parseLabels(labels []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: expected key=value", l)
		}
		out[k] = v
	}
	return out, nil
}
