// Package cli is the ruche command line: `ruche up` runs the platform,
// every other command talks to its API with the client package.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=...".
var Version = "dev"

// ExitError carries an exit code without printing anything more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

type globals struct {
	config string
	output string
	stdout io.Writer
	stderr io.Writer
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	fmt.Fprintln(stderr, "ruche: "+oneLine(err))
	var ae *client.Error
	if errors.As(err, &ae) && len(ae.Details) > 1 {
		for _, d := range ae.Details {
			fmt.Fprintln(stderr, "  "+d)
		}
	}
	return 1
}

func oneLine(err error) string {
	var ae *client.Error
	if errors.As(err, &ae) && len(ae.Details) > 1 {
		return ae.Message
	}
	return err.Error()
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "ruche",
		Short:         "Run compose stacks on your own machines",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.PersistentFlags().StringVar(&g.config, "config", "", "client config file (default $RUCHE_CONFIG, else <data-dir>/admin.conf)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(
		newUpCmd(g),
		newDeployCmd(g),
		newPsCmd(g),
		newScaleCmd(g),
		newRollbackCmd(g),
		newLogsCmd(g),
		newEventsCmd(g),
		newRmCmd(g),
		newStatusCmd(g),
		newNodeCmd(g),
		newRebalanceCmd(g),
		newRoutesCmd(g),
		newBackupCmd(g),
		newDebugCmd(g), // debug.go
		newAgentCmd(g),
		newTokenCmd(g),
		newServerCmd(g),  // server.go
		newManagerCmd(g), // manager.go
	)
	return root
}

// DefaultDataDir is /var/lib/ruche for root, else the user's data directory.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/ruche"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "ruche")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "ruche")
	}
	return filepath.Join(home, ".local", "share", "ruche")
}

// client builds an API client from --config, RUCHE_CONFIG or the default.
func (g *globals) client() (*client.Client, error) {
	path := g.configPath()
	cfg, err := client.LoadConfig(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no client config at %s: start the platform with `ruche up`, or pass --config / set RUCHE_CONFIG", path)
	}
	if err != nil {
		return nil, err
	}
	return client.New(cfg)
}

// configPath is --config, else RUCHE_CONFIG, else <data-dir>/admin.conf.
func (g *globals) configPath() string {
	if g.config != "" {
		return g.config
	}
	if p := os.Getenv("RUCHE_CONFIG"); p != "" {
		return p
	}
	return filepath.Join(DefaultDataDir(), "admin.conf")
}

func (g *globals) json() (bool, error) {
	switch g.output {
	case "table", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("unknown output format %q: use table or json", g.output)
}

// withClient runs fn with an API client and whether -o json was asked,
// after checking the output format: the preamble of every command that
// talks to the API.
func (g *globals) withClient(fn func(c *client.Client, asJSON bool) error) error {
	asJSON, err := g.json()
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	return fn(c, asJSON)
}

// progressOut is where a command's progress lines go: stdout, but stderr
// under -o json, so that stdout holds nothing but JSON.
func (g *globals) progressOut() io.Writer {
	if g.output == "json" {
		return g.stderr
	}
	return g.stdout
}

// show prints v as JSON under -o json, else calls text, which prints it
// for people.
func (g *globals) show(asJSON bool, v any, text func()) error {
	if asJSON {
		return g.printJSON(v)
	}
	text()
	return nil
}

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// splitService parses "project/service".
func splitService(arg string) (string, string, error) {
	p, s, ok := strings.Cut(arg, "/")
	if !ok || p == "" || s == "" || strings.Contains(s, "/") {
		return "", "", fmt.Errorf("%q: expected project/service", arg)
	}
	return p, s, nil
}
