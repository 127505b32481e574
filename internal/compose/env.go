package compose

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// defaultEnv is the interpolation environment when Options.Env is nil:
// the process environment, plus the variables of dir/.env that it does not
// set, as docker compose does.
func defaultEnv(dir string) (map[string]string, error) {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	dotEnv := filepath.Join(dir, ".env")
	st, err := os.Stat(dotEnv)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return env, nil
	case err != nil:
		return nil, fmt.Errorf("read .env: %w", err)
	case st.IsDir():
		return env, nil
	}
	fromFile, err := dotenv.GetEnvFromFile(env, []string{dotEnv})
	if err != nil {
		return nil, fmt.Errorf("read .env: %w", err)
	}
	for k, v := range fromFile {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return env, nil
}

var notNameChar = regexp.MustCompile(`[^a-z0-9-]+`)

// normaliseDirName makes a project name of a directory name: lowercase,
// '_' and '.' become '-', other characters are dropped, and the result is
// trimmed to a DNS label. It returns "" when nothing is left.
func normaliseDirName(dir string) string {
	s := strings.ToLower(dir)
	s = strings.NewReplacer("_", "-", ".", "-", " ", "-").Replace(s)
	s = notNameChar.ReplaceAllString(s, "")
	s = strings.Trim(s, "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}
