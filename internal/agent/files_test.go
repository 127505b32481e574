package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestFilesOfTasksGoneWhileDown: a task deleted while the agent was down,
// with no container left for the orphan scan to find (its creation had
// failed after its secret was written), leaves no secret on disk once the
// agent is back; the files of a task still assigned stay.
func TestFilesOfTasksGoneWhileDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.st.Txn(context.Background(), nil, store.Put(store.SecretKey("p", "pw"), store.Encode(store.SecretRecord{Sealed: []byte("terces")})))
		h.start()
		secrets := []client.FileRef{{Source: "pw"}}
		failed := task(1, "a1", client.ServiceSpec{Image: "nosuch:1", Secrets: secrets})
		kept := task(2, "b2", client.ServiceSpec{Secrets: secrets})
		h.put(failed)
		h.put(kept)
		h.waitState(failed.ID, client.StateFailed)
		h.waitState(kept.ID, client.StateRunning)
		failedFile := filepath.Join(h.dir, "run", failed.ID, "secrets", "0-pw")
		if b, err := os.ReadFile(failedFile); err != nil || string(b) != "secret" {
			t.Fatalf("secret of the failed task: got %q, %v; want it written before the creation failed", b, err)
		}
		h.stop()
		h.del(failed)
		h.start()
		defer h.stop()
		advance(time.Second)
		if _, err := os.Stat(filepath.Join(h.dir, "run", failed.ID)); !os.IsNotExist(err) {
			t.Errorf("files of the task deleted while the agent was down: got %v, want removed", err)
		}
		if b, err := os.ReadFile(filepath.Join(h.dir, "run", kept.ID, "secrets", "0-pw")); err != nil || string(b) != "secret" {
			t.Errorf("secret of the task still assigned: got %q, %v", b, err)
		}
	})
}

// TestOrphanTaskLabelIsNoPath: the task label of a container on the engine
// names a directory under <DataDir>/run only when it is a task ID; a label
// such as ".." (a container made by hand, or by a broken tool) must not
// make the orphan scan delete the agent's data directory, or every task's
// files.
func TestOrphanTaskLabelIsNoPath(t *testing.T) {
	for _, label := range []string{"..", ".", "../keep", "p.web.1.a1/.."} {
		t.Run(label, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := newFakeRuntime(testImage)
				h := newHarness(t, rt)
				h.st.Txn(context.Background(), nil, store.Put(store.SecretKey("p", "pw"), store.Encode(store.SecretRecord{Sealed: []byte("terces")})))
				sentinel := filepath.Join(h.dir, "keep")
				if err := os.WriteFile(sentinel, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				kept := task(1, "a1", client.ServiceSpec{Secrets: []client.FileRef{{Source: "pw"}}})
				h.put(kept)
				h.start()
				defer h.stop()
				h.waitState(kept.ID, client.StateRunning)
				// Its start event has the orphan scan look at it.
				bad := task(9, "z9", client.ServiceSpec{})
				spec := containerSpec(bad, nil)
				spec.Labels[runtime.LabelTask] = label
				rt.addContainer(spec, true)
				advance(time.Minute)
				if cs, _ := rt.List(context.Background(), map[string]string{runtime.LabelTask: label}); len(cs) != 1 {
					t.Errorf("containers labelled %q: got %d, want it left alone", label, len(cs))
				}
				if _, err := os.Stat(sentinel); err != nil {
					t.Errorf("a file of the data directory: %v", err)
				}
				if _, err := os.Stat(filepath.Join(h.dir, "run", kept.ID, "secrets", "0-pw")); err != nil {
					t.Errorf("secret of the task assigned: %v", err)
				}
			})
		})
	}
}
