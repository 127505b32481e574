package client

import (
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Config is a client configuration file: where the API is, the CA that
// signed its certificate, and a token. `ruche up` writes one for the admin
// at <data-dir>/admin.conf (mode 0600).
type Config struct {
	// Servers are API base URLs ("https://127.0.0.1:7443"); the client
	// uses the first that answers.
	Servers []string `yaml:"servers"`
	CA      string   `yaml:"ca"` // PEM
	Token   string   `yaml:"token"`
}

// LoadConfig reads a client configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(c.Servers) == 0 || c.Token == "" || c.CA == "" {
		return nil, fmt.Errorf("%s: servers, ca and token are all required", path)
	}
	return &c, nil
}

// Write saves the configuration at path with mode 0600.
func (c *Config) Write(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	b = append([]byte("# ruche client configuration. It holds a token: keep it private.\n"), b...)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}
