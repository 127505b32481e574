package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/internal/store/backup"
)

func newBackupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up the cluster's state, or bring a new manager up from a backup",
		Long: `A backup file is a gzip'd tar: meta.json (cluster id, revision, sha256 of the snapshot),
snapshot.db (a consistent etcd snapshot of the store), and the cluster's keys: ca.crt, ca.key and
secret.key (the key that seals secrets in the store). Anyone with the file has the cluster's keys
and secrets: keep it private.`,
	}
	cmd.AddCommand(newBackupCreateCmd(g), newBackupRestoreCmd(g))
	return cmd
}

func newBackupCreateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "create FILE",
		Short: "Write a consistent snapshot of the store and the cluster's keys to FILE (mode 0600)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s exists: choose a new file name", path)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var meta backup.Meta
			err = createFile(path, "backup", func(w io.Writer) error {
				_, err := c.Backup(cmd.Context(), w)
				return err
			}, func(tmp string) (err error) {
				if meta, err = backup.VerifyFile(tmp); err != nil {
					return fmt.Errorf("the downloaded backup does not verify (was the transfer cut?): %w", err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			fi, _ := os.Stat(path)
			fmt.Fprintf(g.stdout, "backup of cluster %s at revision %d (%d keys) written to %s (%s)\n",
				meta.ClusterID, meta.Revision, meta.Keys, path, bytesHuman(fi.Size()))
			fmt.Fprintln(g.stdout, "the file holds the cluster's keys (CA key, secret key) and its secrets: keep it private")
			return nil
		},
	}
}

// createFile makes path, which must not exist, through path+".partial"
// (created exclusively, mode 0600): fill writes it, it is synced and
// closed, check (if not nil) reads it, and only then is it renamed into
// place. On an error nothing is left; what names the file in errors.
func createFile(path, what string, fill func(io.Writer) error, check func(tmp string) error) error {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%s file: %w", what, err)
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && check != nil {
		err = check(tmp)
	}
	if err == nil {
		if err = os.Rename(tmp, path); err != nil {
			err = fmt.Errorf("%s file: %w", what, err)
		}
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func newBackupRestoreCmd(g *globals) *cobra.Command {
	cfg := backup.RestoreConfig{}
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Make a new single-manager data dir from a backup (offline: no ruche needs to run)",
		Long: `restore verifies FILE, restores its snapshot into a new store with etcd's own restore code,
writes the cluster CA and secret key, and a fresh admin client config (admin.conf). The data dir
must hold none of these (store/, pki/, secret.key, admin.conf). Then start the manager with: ruche up --data-dir D (and the
--api-addr and --store-peer-addr given here, if any)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := backup.Restore(cmd.Context(), f, cfg)
			if errors.Is(err, backup.ErrInvalid) || errors.Is(err, backup.ErrDataDirInUse) {
				return fmt.Errorf("%s: %w; nothing was written", args[0], err)
			}
			if err != nil {
				return err
			}
			dir, _ := filepath.Abs(cfg.DataDir)
			fmt.Fprintf(g.stdout, "restored cluster %s (revision %d, %d keys, taken %s) into %s\n",
				res.Meta.ClusterID, res.Meta.Revision, res.Meta.Keys, res.Meta.Created.Local().Format("2006-01-02 15:04:05"), dir)
			fmt.Fprintf(g.stdout, "admin config: %s\n", res.AdminConf)
			fmt.Fprintln(g.stdout, "the store is as it was then: tokens revoked since then work again (ruche token ls, ruche token rm),")
			fmt.Fprintln(g.stdout, "projects deployed since then are gone, and their containers are removed as orphans (named volumes are kept)")
			up := "ruche up --data-dir " + dir
			for _, name := range []string{"api-addr", "store-peer-addr"} { // where admin.conf and the store expect it
				if fl := cmd.Flags().Lookup(name); fl.Changed {
					up += " --" + name + " " + fl.Value.String()
				}
			}
			fmt.Fprintf(g.stdout, "now run: %s\n", up)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", DefaultDataDir(), "the new manager's data dir (must not hold a store)")
	f.StringVar(&cfg.MemberName, "store-member", "ruche", "name of the restored etcd member")
	f.StringVar(&cfg.PeerAddr, "store-peer-addr", "127.0.0.1:7480", "the restored etcd member's peer address (as ruche up --store-peer-addr)")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:7443", "API address written in admin.conf (as ruche up --api-addr)")
	return cmd
}
