package certs

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ruche-platform/ruche/internal/store"
)

// FilesPrefix holds the certificates users gave (TLS mode "files"): one
// FilesRecord per route host, written by the API server, read here.
const FilesPrefix = store.Root + "tlsfiles/"

// FilesKey is where the FilesRecord of host lives ("*.example.org" for a
// wildcard route).
func FilesKey(host string) string { return FilesPrefix + normalize(host) }

// FilesRecord is a user's certificate for one route host. The API server
// writes it with the private key sealed (secret.Box.Seal of the key PEM);
// the key is never stored in clear.
type FilesRecord struct {
	Cert      []byte `json:"cert"`       // PEM, leaf first, then intermediates
	SealedKey []byte `json:"sealed_key"` // sealed PEM private key
	Project   string `json:"project"`
	Service   string `json:"service"`
}

// fileCrt is a FilesRecord ready to serve.
type fileCrt struct {
	cert    *tls.Certificate
	project string
}

// serves tells whether this certificate may answer for w: a project's
// certificate is not served for another project's route.
func (f *fileCrt) serves(w Want) bool {
	return w.Project == "" || f.project == "" || f.project == w.Project
}

func (m *Manager) decodeFiles(host string, value []byte) (*fileCrt, error) {
	var rec FilesRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if m.opener == nil {
		return nil, errors.New("sealed key and nothing to open it")
	}
	keyPEM, err := m.opener.Open(rec.SealedKey)
	if err != nil {
		return nil, fmt.Errorf("open key: %w", err)
	}
	pair, err := tls.X509KeyPair(rec.Cert, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key pair: %w", err)
	}
	if !covers(pair.Leaf, host) {
		m.log.Warn("user certificate does not cover its host; serving it anyway", "host", host,
			"names", pair.Leaf.DNSNames, "project", rec.Project, "service", rec.Service)
	}
	return &fileCrt{cert: &pair, project: rec.Project}, nil
}

// applyFiles follows one change of the stored user certificates. A record
// that does not load is not served (the store is the truth) and is logged.
func (m *Manager) applyFiles(ev store.Event) {
	host := strings.TrimPrefix(ev.KV.Key, FilesPrefix)
	var f *fileCrt
	if ev.Type == store.EventPut {
		var err error
		if f, err = m.decodeFiles(host, ev.KV.Value); err != nil {
			m.log.Warn("user certificate unusable", "host", host, "err", err)
		}
	}
	m.mu.Lock()
	if f != nil {
		m.files[host] = f
	} else {
		delete(m.files, host)
	}
	m.mu.Unlock()
}

// resetFiles replaces every user certificate with a full listing.
func (m *Manager) resetFiles(kvs []store.KV) {
	files := make(map[string]*fileCrt, len(kvs))
	for _, kv := range kvs {
		host := strings.TrimPrefix(kv.Key, FilesPrefix)
		f, err := m.decodeFiles(host, kv.Value)
		if err != nil {
			m.log.Warn("user certificate unusable", "host", host, "err", err)
			continue
		}
		files[host] = f
	}
	m.mu.Lock()
	m.files = files
	m.mu.Unlock()
}
