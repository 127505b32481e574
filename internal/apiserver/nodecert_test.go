package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// renew asks for a new certificate of node presenting cert; it returns the
// status, the error code (if any) and the new pair (on success).
func (e *tlsEnv) renew(cert *tls.Certificate, node string) (int, string, *tls.Certificate) {
	e.t.Helper()
	csr, key, err := pki.NewNodeKey(node)
	if err != nil {
		e.t.Fatal(err)
	}
	code, body := e.do(e.httpClient(cert), "POST", "/v1/agent/nodes/"+node+"/cert", "", client.NodeCertRequest{CSR: string(csr)})
	if code != http.StatusOK {
		var ce client.Error
		json.Unmarshal(body, &ce)
		return code, ce.Code, nil
	}
	var r client.NodeCertResponse
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Fatal(err)
	}
	pair, err := tls.X509KeyPair([]byte(r.Cert), key)
	if err != nil {
		e.t.Fatalf("new certificate does not fit the key: %v", err)
	}
	return code, "", &pair
}

func TestRenewNodeCert(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	n2 := e.mustJoin("n2")
	n3 := e.mustJoin("n3")
	gone := e.mustJoin("gone")
	e.st.Txn(ctx, nil, store.Delete(store.NodeKey("gone")))
	replaced := e.mustJoin("n4")
	e.markDown("n4") // a join takes the name of a down node only
	rejoined := e.mustJoin("n4")

	// The agent API answers as the renewal does: the agent stops on
	// node_removed and node_replaced.
	for _, tc := range []struct {
		name     string
		cert     *tls.Certificate
		node     string
		wantCode int
		wantErr  string
	}{
		{"no certificate", nil, "n2", 401, "unauthorized"},
		{"another node's certificate", n3, "n2", 403, "forbidden"},
		{"removed node", gone, "gone", 403, agent.CodeNodeRemoved},
		{"certificate replaced by a new join", replaced, "n4", 403, agent.CodeNodeReplaced},
		{"the new join's certificate", rejoined, "n4", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, errCode, _ := e.renew(tc.cert, tc.node)
			if code != tc.wantCode || errCode != tc.wantErr {
				t.Fatalf("renewal: got %d %q, want %d %q", code, errCode, tc.wantCode, tc.wantErr)
			}
			code, body := e.do(e.httpClient(tc.cert), "POST", "/v1/agent/nodes/"+tc.node+"/heartbeat", "", client.NodeLoad{})
			var ce client.Error
			json.Unmarshal(body, &ce)
			if code != tc.wantCode || ce.Code != tc.wantErr {
				t.Fatalf("heartbeat: got %d %s, want %d %q", code, body, tc.wantCode, tc.wantErr)
			}
		})
	}

	t.Run("own certificate", func(t *testing.T) {
		code, errCode, renewed := e.renew(n2, "n2")
		if code != http.StatusOK {
			t.Fatalf("got %d %q, want 200", code, errCode)
		}
		oldLeaf, _ := x509.ParseCertificate(n2.Certificate[0])
		leaf, _ := x509.ParseCertificate(renewed.Certificate[0])
		id, err := pki.CertIdentity(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if id.NodeID != "n2" || id.Role != pki.RoleAgent {
			t.Errorf("identity: got %+v, want n2/agent", id)
		}
		if got, want := leaf.IPAddresses, oldLeaf.IPAddresses; len(got) != 1 || !got[0].Equal(want[0]) {
			t.Errorf("addresses: got %v, want %v", got, want)
		}
		var n client.Node
		store.GetJSON(ctx, e.st, store.NodeKey("n2"), &n)
		if n.CertSerial != id.Serial || n.CertSerialPrev != oldLeaf.SerialNumber.Text(16) {
			t.Errorf("record serials: got %s/%s, want %s/%s", n.CertSerial, n.CertSerialPrev, id.Serial, oldLeaf.SerialNumber.Text(16))
		}
		if !strings.Contains(e.logs.String(), "node certificate renewed") {
			t.Error("no log of the renewal")
		}
		// Both the new and the previous certificate are accepted; the
		// next renewal drops the oldest.
		for name, c := range map[string]*tls.Certificate{"new": renewed, "previous": n2} {
			if code, body := e.do(e.httpClient(c), "POST", "/v1/agent/nodes/n2/heartbeat", "", client.NodeLoad{}); code != 200 {
				t.Errorf("heartbeat with the %s certificate: got %d %s, want 200", name, code, body)
			}
		}
		if code, errCode, _ := e.renew(renewed, "n2"); code != http.StatusOK {
			t.Fatalf("second renewal: got %d %q", code, errCode)
		}
		if code, body := e.do(e.httpClient(n2), "POST", "/v1/agent/nodes/n2/heartbeat", "", client.NodeLoad{}); code != 403 {
			t.Errorf("heartbeat with the first certificate after two renewals: got %d %s, want 403", code, body)
		}
	})

	t.Run("register keeps the serials", func(t *testing.T) {
		var before client.Node
		store.GetJSON(ctx, e.st, store.NodeKey("n3"), &before)
		code, _, renewed := e.renew(n3, "n3")
		if code != http.StatusOK {
			t.Fatalf("renew: got %d", code)
		}
		if code, body := e.do(e.httpClient(renewed), "POST", "/v1/agent/nodes/n3/register", "", client.Node{ID: "n3", Hostname: "h"}); code != http.StatusNoContent {
			t.Fatalf("register: got %d %s", code, body)
		}
		var n client.Node
		store.GetJSON(ctx, e.st, store.NodeKey("n3"), &n)
		if n.CertSerialPrev != before.CertSerial || n.CertSerial == before.CertSerial {
			t.Errorf("got serials %s/%s, want new/%s", n.CertSerial, n.CertSerialPrev, before.CertSerial)
		}
	})
}

// markDown sets node's status to down, as the managers do for a silent node.
func (e *tlsEnv) markDown(node string) {
	e.t.Helper()
	ctx := context.Background()
	var n client.Node
	rev, err := store.GetJSON(ctx, e.st, store.NodeKey(node), &n)
	if err != nil {
		e.t.Fatal(err)
	}
	n.Status = "down"
	if _, err := e.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(store.NodeKey(node), rev)}, store.Put(store.NodeKey(node), store.Encode(n))); err != nil {
		e.t.Fatal(err)
	}
}
