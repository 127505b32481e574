package apiserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// Join tokens: `ruche token create` makes one, a machine joins with it
// once. Only the SHA-256 of a token is stored; the token itself is in the
// creation answer and nowhere else (not in logs, not in errors).
const (
	// JoinTokenPrefix starts every join token, so one is recognisable (and
	// never confused with an API token, "ruche_...").
	JoinTokenPrefix = "ruchejoin_"
	// DefaultJoinTTL is how long a join token is valid unless asked.
	DefaultJoinTTL = time.Hour
	// tokenIDLen is how much of the hash names a token in listings.
	tokenIDLen = 12
)

func (s *Server) tokenRoutes() {
	s.handle("POST /v1/tokens", s.createJoinToken)
	s.handle("GET /v1/tokens", s.listJoinTokens)
	s.handle("DELETE /v1/tokens/{id}", s.removeJoinToken)
}

// managerURLs are the URLs machines join through.
func (s *Server) managerURLs() []string {
	if len(s.cfg.ManagerURLs) > 0 {
		return s.cfg.ManagerURLs
	}
	if s.cfg.APIAddr != "" {
		return []string{"https://" + s.cfg.APIAddr}
	}
	return nil
}

// createJoinToken is POST /v1/tokens.
func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request) error {
	var req client.TokenRequest
	if err := decodeBody(r, &req, "token request"); err != nil {
		return err
	}
	switch req.Role {
	case "":
		req.Role = client.JoinRoleAgent
	case client.JoinRoleAgent, client.JoinRoleManager:
	default:
		return invalid(fmt.Sprintf("role must be %q or %q, got %q", client.JoinRoleAgent, client.JoinRoleManager, req.Role))
	}
	ttl := req.TTL.D()
	if ttl == 0 {
		ttl = DefaultJoinTTL
	}
	if ttl < 0 {
		return invalid("ttl must be positive")
	}
	b := make([]byte, 20)
	rand.Read(b)
	tok := JoinTokenPrefix + hex.EncodeToString(b)
	hash := HashToken(tok)
	now := time.Now().UTC()
	rec := store.JoinTokenRecord{Role: req.Role, Created: now, Expires: now.Add(ttl)}
	ops := []store.Op{store.Put(store.JoinTokenKey(hash), store.Encode(rec))}
	// Expired tokens go with the creation of a new one.
	kvs, _, err := s.d.Store.List(r.Context(), store.JoinTokensPrefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		var old store.JoinTokenRecord
		if store.Decode(kv, &old) == nil && now.After(old.Expires) {
			ops = append(ops, store.Delete(kv.Key))
		}
	}
	if _, err := s.d.Store.Txn(r.Context(), nil, ops...); err != nil {
		return fmt.Errorf("store join token: %w", err)
	}
	out := client.JoinToken{ID: hash[:tokenIDLen], Token: tok, Role: rec.Role, Created: rec.Created, Expires: rec.Expires, Managers: s.managerURLs()}
	if s.d.CA != nil {
		out.CAHash = client.CAHash(s.d.CA.Cert)
	}
	s.log.Info("join token created", "id", out.ID, "role", rec.Role, "expires", rec.Expires)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// listJoinTokens is GET /v1/tokens: the join tokens not used yet, without
// their secret.
func (s *Server) listJoinTokens(w http.ResponseWriter, r *http.Request) error {
	kvs, _, err := s.d.Store.List(r.Context(), store.JoinTokensPrefix)
	if err != nil {
		return err
	}
	out := []client.JoinToken{}
	for _, kv := range kvs {
		var rec store.JoinTokenRecord
		if store.Decode(kv, &rec) != nil {
			continue
		}
		hash := store.Last(kv.Key)
		out = append(out, client.JoinToken{ID: hash[:min(tokenIDLen, len(hash))], Role: rec.Role, Created: rec.Created, Expires: rec.Expires})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// removeJoinToken is DELETE /v1/tokens/{id}: id is a prefix (6 characters
// or more) of the token's hash, as listed.
func (s *Server) removeJoinToken(w http.ResponseWriter, r *http.Request) error {
	id := strings.ToLower(r.PathValue("id"))
	if len(id) < 6 {
		return invalid("token id must have at least 6 characters, as `ruche token ls` shows it")
	}
	kvs, _, err := s.d.Store.List(r.Context(), store.JoinTokensPrefix+id)
	if err != nil {
		return err
	}
	switch len(kvs) {
	case 0:
		return notFound("no such join token: " + id)
	case 1:
	default:
		return invalid(fmt.Sprintf("token id %s is ambiguous (%d tokens): give more characters", id, len(kvs)))
	}
	if _, err := s.d.Store.Txn(r.Context(), []store.Cmp{store.ModRevisionIs(kvs[0].Key, kvs[0].ModRevision)}, store.Delete(kvs[0].Key)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return notFound("no such join token: " + id)
		}
		return err
	}
	s.log.Info("join token removed", "id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
