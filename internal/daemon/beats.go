package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// beatRelay is the heartbeat sink of a manager's in-process agent: the
// local tracker, and every other live manager (POST /v1/managers/beat with
// this manager's certificate), so whichever manager leads next has heard
// the node. Remote agents beat to every manager themselves
// (agent.RemoteConn). Best effort: one beat in flight per peer.
type beatRelay struct {
	local agent.HeartbeatSink
	st    store.Store
	self  string // this manager's API URL
	hc    *http.Client
	log   *slog.Logger

	mu         sync.Mutex
	peers      []string
	seen       map[string]time.Time // peer URL -> when a read last listed it
	peersAt    time.Time
	refreshing bool // a read of the peers runs
	busy       map[string]bool
}

func newBeatRelay(local agent.HeartbeatSink, st store.Store, self string, ca *pki.CA, cert *pki.Keypair, log *slog.Logger) *beatRelay {
	tr := &http.Transport{TLSClientConfig: &tls.Config{GetClientCertificate: cert.GetClientCertificate, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12,
		VerifyConnection: pki.VerifyAPIServer},
		TLSHandshakeTimeout: 3 * time.Second, ForceAttemptHTTP2: true}
	return &beatRelay{local: local, st: st, self: self, hc: &http.Client{Transport: tr, Timeout: 3 * time.Second},
		log: log.With("component", "beat-relay"), busy: map[string]bool{}, seen: map[string]time.Time{}}
}

func (b *beatRelay) Beat(node string, load client.NodeLoad) time.Duration {
	d := b.local.Beat(node, load)
	body, _ := json.Marshal(apiserver.ManagerBeat{Node: node, Load: load})
	for _, p := range b.peerURLs() {
		b.mu.Lock()
		busy := b.busy[p]
		b.busy[p] = true
		b.mu.Unlock()
		if busy {
			continue
		}
		go func() {
			defer func() {
				b.mu.Lock()
				delete(b.busy, p)
				b.mu.Unlock()
			}()
			req, err := http.NewRequest(http.MethodPost, p+"/v1/managers/beat", bytes.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := b.hc.Do(req)
			if err != nil {
				b.log.Debug("beat not relayed", "manager", p, "err", err)
				return
			}
			resp.Body.Close()
		}()
	}
	return d
}

// peerURLs are the other managers' API URLs, read from the store at most
// every 5 s. The read runs in the background and the beat goes to the
// peers known so far: a beat must never wait for the store, which can
// stall while its leader changes. And a peer stays a peer for peerKeep
// after the last read that listed it: a manager's record is on a lease it
// gives up and takes anew when the store fails it, so a read during a
// change of leader can miss a manager that is about to lead. Such gaps
// left a manager's own node unheard by the next leader and marked down (3
// of 27 runs of e2e TestManagers).
func (b *beatRelay) peerURLs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.peersAt) >= 5*time.Second && !b.refreshing {
		b.refreshing = true
		go b.refreshPeers()
	}
	return b.peers
}

// refreshPeers reads the manager records into b.peers.
func (b *beatRelay) refreshPeers() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kvs, _, err := b.st.List(ctx, store.ManagersPrefix)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refreshing = false
	b.peersAt = time.Now()
	if err != nil {
		return
	}
	now := time.Now()
	for _, kv := range kvs {
		var r store.ManagerRecord
		if store.Decode(kv, &r) == nil && r.APIURL != "" && r.APIURL != b.self {
			b.seen[r.APIURL] = now
		}
	}
	var out []string
	for url, at := range b.seen {
		if now.Sub(at) > peerKeep {
			delete(b.seen, url)
			continue
		}
		out = append(out, url)
	}
	slices.Sort(out)
	b.peers = out
}

// peerKeep is how long a manager no read lists any more still gets beats.
const peerKeep = 30 * time.Second
