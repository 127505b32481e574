package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/internal/daemon"
)

// agentIngressFlags are the ingress flags of `ruche agent`: those of
// `ruche up` but ACME's (certificates are obtained by the managers).
func agentIngressFlags(cmd *cobra.Command, in *daemon.IngressConfig) {
	f := cmd.Flags()
	f.StringVar(&in.HTTPAddr, "http-addr", ":80", "ingress HTTP listen address (\"\" turns it off)")
	f.StringVar(&in.HTTPSAddr, "https-addr", ":443", "ingress HTTPS listen address (\"\" turns it off; certificates come from the managers)")
	f.StringArrayVar(&in.TrustedProxies, "trusted-proxy", nil, "address or CIDR of a proxy in front whose X-Forwarded-For is believed (repeatable)")
	f.Float64Var(&in.RateLimit, "rate-limit", 0, "requests per second per client IP at the ingress (0: off)")
	f.IntVar(&in.RateBurst, "rate-burst", 0, "burst for --rate-limit (default: the rate)")
	f.Int64Var(&in.MaxBodyBytes, "max-body", 0, "largest request body the ingress accepts, in bytes (0: no limit)")
	f.DurationVar(&in.HoldTimeout, "hold-timeout", 5*time.Second, "how long a request waits for a ready replica before a 503")
	f.DurationVar(&in.DrainTimeout, "drain-timeout", 30*time.Second, "how long a stopping replica is drained before it is stopped anyway")
	f.BoolVar(&in.AccessLog, "access-log", false, "write the ingress access log (JSON lines) to stderr")
}
