package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/internal/store"
)

// InternalPrefix holds the certificates issued by the cluster CA, one record
// per host: issued once, by whichever node gets there first, and served by
// every node.
const InternalPrefix = store.Root + "tlsinternal/"

func internalKey(host string) string { return InternalPrefix + host }

// retryAfter is how soon a failed store write is tried again.
const retryAfter = 10 * time.Second

// internalRecord is the stored form of an internal certificate. The key is
// sealed when the Manager can seal.
type internalRecord struct {
	Cert      []byte `json:"cert"`
	Key       []byte `json:"key,omitempty"`
	SealedKey []byte `json:"sealed_key,omitempty"`
}

// leaf is an internal certificate as served.
type leaf struct {
	cert            *tls.Certificate // Leaf is set
	certPEM, keyPEM []byte
	fromCA          bool  // signed by this node's CA (true when the node has no CA to check with)
	rev             int64 // store revision of its record; 0: not stored
}

// renewAt is 2/3 of the way through the certificate's life.
func (l *leaf) renewAt() time.Time {
	nb, na := l.cert.Leaf.NotBefore, l.cert.Leaf.NotAfter
	return nb.Add(na.Sub(nb) * 2 / 3)
}

func (l *leaf) fresh(now time.Time) bool { return l.fromCA && now.Before(l.renewAt()) }

func (l *leaf) valid(now time.Time) bool {
	return l.fromCA && now.Before(l.cert.Leaf.NotAfter) && !now.Before(l.cert.Leaf.NotBefore)
}

// internalCert serves an internal certificate; when there is none yet (the
// first handshake came before Run's first pass), it issues one on the spot —
// signing is fast and needs no I/O — and lets Run store it.
func (m *Manager) internalCert(w Want) (*tls.Certificate, error) {
	now := time.Now()
	m.mu.RLock()
	l := m.internal[w.Host]
	m.mu.RUnlock()
	if l != nil && l.valid(now) {
		return l.cert, nil
	}
	if m.ca == nil {
		return nil, fmt.Errorf("%s: %w", w.Host, ErrNoCA)
	}
	nl, err := m.issue(w.Host)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if cur := m.internal[w.Host]; cur != nil && cur.valid(now) {
		nl = cur
	} else {
		m.internal[w.Host] = nl
	}
	m.mu.Unlock()
	m.poke()
	return nl.cert, nil
}

func (m *Manager) issue(host string) (*leaf, error) {
	certPEM, keyPEM, err := m.ca.Leaf([]string{host}, m.cfg.InternalLifetime)
	if err != nil {
		return nil, fmt.Errorf("issue internal certificate for %s: %w", host, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("issue internal certificate for %s: %w", host, err)
	}
	m.met.internalIssued.Inc()
	return &leaf{cert: &pair, certPEM: certPEM, keyPEM: keyPEM, fromCA: true}, nil
}

// ensureInternal makes sure the store holds a fresh certificate for w.Host
// and that it is the one served; it returns when to look again.
func (m *Manager) ensureInternal(ctx context.Context, w Want) time.Time {
	now := time.Now()
	m.mu.RLock()
	l, rev := m.internal[w.Host], m.internalRev[w.Host]
	m.mu.RUnlock()
	if l != nil && l.rev != 0 && l.rev == rev && l.fresh(now) {
		return l.renewAt()
	}
	if m.ca == nil {
		m.warnOnce("no-ca/"+w.Host, "no cluster CA on this node: waiting for another node to issue the internal certificate", "host", w.Host)
		return now.Add(time.Hour) // the watch brings the certificate when a node stores it
	}
	if l == nil || !l.fresh(now) || l.keyPEM == nil {
		var err error
		if l, err = m.issue(w.Host); err != nil {
			m.log.Error("internal certificate", "host", w.Host, "err", err)
			return now.Add(retryAfter)
		}
	}
	val, err := m.encodeInternal(l)
	if err != nil {
		m.log.Error("internal certificate", "host", w.Host, "err", err)
		return now.Add(retryAfter)
	}
	newRev, err := m.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(internalKey(w.Host), rev)}, store.Put(internalKey(w.Host), val))
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another node stored one first: serve that one if it is good.
		kv, gerr := m.st.Get(ctx, internalKey(w.Host))
		if gerr != nil {
			return now.Add(retryAfter)
		}
		m.applyInternal(store.Event{Type: store.EventPut, KV: kv})
		m.mu.RLock()
		cur := m.internal[w.Host]
		m.mu.RUnlock()
		if cur != nil && cur.rev == kv.ModRevision && cur.fresh(now) {
			return cur.renewAt()
		}
		return now.Add(retryAfter)
	case err != nil:
		if ctx.Err() == nil {
			m.log.Warn("store internal certificate", "host", w.Host, "err", err)
		}
		return now.Add(retryAfter)
	}
	stored := *l
	stored.rev = newRev
	m.mu.Lock()
	if m.internalRev[w.Host] <= newRev {
		m.internalRev[w.Host] = newRev
		m.internal[w.Host] = &stored
	}
	m.mu.Unlock()
	m.log.Info("internal certificate issued", "host", w.Host, "not_after", l.cert.Leaf.NotAfter)
	return stored.renewAt()
}

func (m *Manager) encodeInternal(l *leaf) ([]byte, error) {
	rec := internalRecord{Cert: l.certPEM}
	if m.sealer != nil {
		sealed, err := m.sealer.Seal(l.keyPEM)
		if err != nil {
			return nil, fmt.Errorf("seal key: %w", err)
		}
		rec.SealedKey = sealed
	} else {
		rec.Key = l.keyPEM
	}
	return json.Marshal(rec)
}

func (m *Manager) decodeInternal(host string, value []byte) (*leaf, error) {
	var rec internalRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	keyPEM := rec.Key
	if rec.SealedKey != nil {
		if m.opener == nil {
			return nil, errors.New("sealed key and nothing to open it")
		}
		var err error
		if keyPEM, err = m.opener.Open(rec.SealedKey); err != nil {
			return nil, fmt.Errorf("open key: %w", err)
		}
	}
	pair, err := tls.X509KeyPair(rec.Cert, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("key pair: %w", err)
	}
	if !covers(pair.Leaf, host) {
		return nil, fmt.Errorf("certificate does not cover %s", host)
	}
	fromCA := m.ca == nil || pair.Leaf.CheckSignatureFrom(m.ca.Cert) == nil
	return &leaf{cert: &pair, certPEM: rec.Cert, keyPEM: keyPEM, fromCA: fromCA}, nil
}

// applyInternal follows one change of the stored internal certificates.
func (m *Manager) applyInternal(ev store.Event) {
	host := strings.TrimPrefix(ev.KV.Key, InternalPrefix)
	if ev.Type == store.EventDelete {
		m.mu.Lock()
		if ev.KV.ModRevision != 0 && ev.KV.ModRevision < m.internalRev[host] {
			m.mu.Unlock()
			return // a delete older than our own write
		}
		m.internalRev[host] = 0
		if l := m.internal[host]; l != nil && l.rev != 0 {
			unsaved := *l
			unsaved.rev = 0
			m.internal[host] = &unsaved
		}
		m.mu.Unlock()
		m.poke()
		return
	}
	rev := ev.KV.ModRevision
	m.mu.Lock()
	if rev < m.internalRev[host] {
		m.mu.Unlock()
		return // older than what we wrote ourselves
	}
	m.internalRev[host] = rev
	cur := m.internal[host]
	m.mu.Unlock()
	if cur != nil && cur.rev == rev {
		return // our own write coming back
	}
	l, err := m.decodeInternal(host, ev.KV.Value)
	if err != nil {
		m.log.Warn("stored internal certificate unusable; issuing another", "host", host, "err", err)
		m.poke()
		return
	}
	l.rev = rev
	if !l.valid(time.Now()) {
		m.poke()
		return
	}
	m.mu.Lock()
	if m.internalRev[host] == rev {
		m.internal[host] = l
	}
	m.mu.Unlock()
}

// collectInternal deletes the stored internal certificates that no route
// wants and that have expired (or do not load), so records of old routes do
// not pile up. Wanted hosts are left to ensureInternal.
func (m *Manager) collectInternal(ctx context.Context) {
	now := time.Now()
	type victim struct {
		host string
		rev  int64
	}
	var victims []victim
	m.mu.RLock()
	for host, rev := range m.internalRev {
		if _, wanted := m.wants[host]; wanted || rev == 0 {
			continue
		}
		if l := m.internal[host]; l == nil || l.rev != rev || !now.Before(l.cert.Leaf.NotAfter) {
			victims = append(victims, victim{host, rev})
		}
	}
	m.mu.RUnlock()
	for _, v := range victims {
		// The compare keeps a record another node just rewrote.
		_, err := m.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(internalKey(v.host), v.rev)}, store.Delete(internalKey(v.host)))
		if err != nil && !errors.Is(err, store.ErrConflict) && ctx.Err() == nil {
			m.log.Warn("delete expired internal certificate", "host", v.host, "err", err)
			continue
		}
		if err == nil {
			m.mu.Lock()
			if l := m.internal[v.host]; l != nil && l.rev == v.rev {
				delete(m.internal, v.host)
			}
			m.mu.Unlock()
		}
	}
}

// resetInternal replaces the view of the stored internal certificates with
// a full listing.
func (m *Manager) resetInternal(kvs []store.KV) {
	present := map[string]bool{}
	for _, kv := range kvs {
		present[strings.TrimPrefix(kv.Key, InternalPrefix)] = true
	}
	m.mu.RLock()
	var gone []string
	for host := range m.internalRev {
		if !present[host] {
			gone = append(gone, host)
		}
	}
	m.mu.RUnlock()
	for _, host := range gone {
		m.applyInternal(store.Event{Type: store.EventDelete, KV: store.KV{Key: internalKey(host)}})
	}
	for _, kv := range kvs {
		m.applyInternal(store.Event{Type: store.EventPut, KV: kv})
	}
}

// covers tells whether c is valid for host; for a wildcard host, whether it
// is valid for any name the wildcard matches.
func covers(c *x509.Certificate, host string) bool {
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		host = "x." + rest
	}
	return c.VerifyHostname(host) == nil
}
