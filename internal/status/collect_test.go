package status

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/watch"
)

// collectState is a state file of pipeline "ttp" holding recs, the
// watcher's saved states and, when self is set, a serve record naming this
// (live) test process.
func collectState(t *testing.T, recs []*state.Record, watched map[string]watch.State, self bool) *state.Store {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), ".flowctl", "ttp.state.db"), "ttp")
	if err != nil {
		t.Fatal(err)
	}
	var serveRecord []byte
	if self {
		id, err := procinfo.Self()
		if err != nil {
			t.Fatal(err)
		}
		host, _ := os.Hostname()
		rec := serve.Record{Process: id, Host: host, StartedAt: time.Now(), Addrs: serve.Addrs{GRPC: "127.0.0.1:8080"}, AuthMode: controlplane.AuthRequired}
		if serveRecord, err = json.Marshal(rec); err != nil {
			t.Fatal(err)
		}
	}
	err = store.Update(func(tx *state.Tx) error {
		for _, r := range recs {
			if err := tx.PutComponent(r); err != nil {
				return err
			}
		}
		for addr, st := range watched {
			b, err := st.Marshal()
			if err != nil {
				return err
			}
			if err := tx.PutData(watch.DataNamespace, addr, b); err != nil {
				return err
			}
		}
		if serveRecord != nil {
			return tx.PutData(serve.RecordNamespace, serve.RecordKey, serveRecord)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func TestCollectDerivesFromTheStateFileAndTheExecutors(t *testing.T) {
	now := time.Now()
	code := 2
	recs := []*state.Record{
		{Address: "source.ledger", Kind: "source", ID: "ledger", Provider: "fake", InstanceID: "i-ledger", Status: state.StatusRunning,
			Handle: providers.Handle(`"ledger"`), Spec: json.RawMessage(`{"restart":{"policy":"on-failure","max_retries":5}}`), RestartCount: 2},
		{Address: "sink.out", Kind: "sink", ID: "out", Provider: "fake", InstanceID: "i-out", Status: state.StatusRunning,
			Handle: providers.Handle(`"out"`), Spec: json.RawMessage(`{"restart":{"policy":"on-failure","max_retries":5}}`)},
	}
	watched := map[string]watch.State{"sink.out": {Phase: watch.PhaseCrashloop, Instance: "i-out", Attempt: 5, Reason: "exited code=2", ExitCode: &code}}
	fake := &fakeProvider{name: "fake", observed: map[string]providers.Observed{
		`"ledger"`: {Exists: true, ExitCode: &code, Detail: "exited with code 2"},
		`"out"`:    {Exists: true, ExitCode: &code, Detail: "exited with code 2"},
	}}
	desired := &config.Pipeline{Components: []*config.Component{{Kind: "source", ID: "ledger", Executor: "fake"}, {Kind: "sink", ID: "out", Executor: "fake"}}}

	for _, tc := range []struct {
		name         string
		serveUp      bool
		ledgerState  State
		ledgerDetail string
	}{
		{"serve down: a failed component stays failed, and says why", false, StateFailed, "exited with code 2; the control plane is not running: nothing restarts it"},
		{"serve up: the watcher brings an exited component back", true, StateRestarting, "exited with code 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := collectState(t, recs, watched, tc.serveUp)
			doc, err := Collect(context.Background(), Input{Store: store, Providers: providers.NewRegistry(fake), Desired: desired, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if doc.Pipeline != "ttp" || doc.StateFile != store.Path() || !doc.Time.Equal(now) || doc.Time.Location() != time.UTC {
				t.Errorf("doc %+v", doc)
			}
			if doc.ControlPlane.Running != tc.serveUp || (tc.serveUp && (doc.ControlPlane.PID != os.Getpid() || doc.ControlPlane.AuthMode != "required")) {
				t.Errorf("control plane %+v", doc.ControlPlane)
			}
			if len(doc.Components) != 2 {
				t.Fatalf("components %+v", doc.Components)
			}
			if l := doc.Components[0]; l.Address != "source.ledger" || l.State != tc.ledgerState || l.Detail != tc.ledgerDetail || l.Restarts != 2 || !l.InState || !l.InPipeline {
				t.Errorf("source.ledger %+v", l)
			}
			if o := doc.Components[1]; o.State != StateCrashloop || o.Detail != "crashloop: exited code=2 after 5 restarts" {
				t.Errorf("sink.out %+v", o)
			}
		})
	}
}
