package cli

import "github.com/spf13/cobra"

// newServerCmd is `ruche server`: a manager without the agent.
func newServerCmd(g *globals) *cobra.Command {
	cmd := daemonCmd(g, true)
	cmd.Use = "server"
	cmd.Short = "Run a manager on this machine (store member, API, controllers), without an agent"
	cmd.Long = `server runs a manager: an embedded etcd member, the HTTPS API and, when it leads, the
controllers. It takes the same flags as ` + "`ruche up`" + `, which is server plus an agent.

A second and third manager join the first with a manager token:

  ruche token create --role manager          # on a manager
  ruche server --join https://MANAGER:7443 --token T --ca-hash sha256:... --advertise-addr IP

The first manager needs --advertise-addr (its store then listens for peers on IP:7480 with
mutual TLS). A manager that joined keeps its membership in --data-dir; later starts need no
--join.`
	return cmd
}
