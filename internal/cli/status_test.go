package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/status"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// statusState is a state file of pipeline "ttp" with two records; neither
// names an object (so no executor is asked).
func statusState(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), ".flowctl", "ttp.state.db"), "ttp")
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *state.Tx) error {
		for _, r := range []*state.Record{
			{Address: "source.ledger", Kind: "source", ID: "ledger", Provider: "process", InstanceID: "i-ledger", Status: state.StatusCreating, TokenGeneration: 1},
			{Address: "sink.out", Kind: "sink", ID: "out", Provider: "docker", InstanceID: "i-out", Status: state.StatusStopped, StatusReason: "stopped by the operator", RestartCount: 2},
		} {
			if err := tx.PutComponent(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// serveInProcess runs a control plane on the store in-process until stop.
func serveInProcess(t *testing.T, store *state.Store) (serve.Addrs, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan serve.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, serve.Options{
			StatePath: store.Path(), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", MemoryLimit: -1,
			Ready: func(a serve.Addrs) { ready <- a },
		})
	}()
	var addrs serve.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return addrs, stop
}

func statusJSON(t *testing.T, statePath string) (status.Doc, string) {
	t.Helper()
	r := run(t, "status", "--state", statePath, "-o", "json")
	r.wantCode(t, 0)
	var doc status.Doc
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	return doc, r.out
}

func rowsByAddress(doc status.Doc) map[string]status.Component {
	rows := map[string]status.Component{}
	for _, r := range doc.Components {
		rows[r.Address] = r
	}
	return rows
}

// registerLedger registers source.ledger with the control plane at addrs,
// with a token, heartbeats once, and waits until the heartbeat is in the
// state. It returns the token.
func registerLedger(t *testing.T, store *state.Store, addrs serve.Addrs) string {
	t.Helper()
	secret, err := tokens.LoadSecret(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	var lineage string
	_ = store.View(func(tx *state.Tx) error { lineage = tx.Meta().Lineage; return nil })
	tok, err := tokens.NewIssuer(secret).Issue(tokens.Subject{Address: "source.ledger", Pipeline: "ttp", Lineage: lineage, InstanceID: "i-ledger"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addrs.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cp := flowctlv1.NewControlPlaneServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	if _, err := cp.RegisterComponent(ctx, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Heartbeat(ctx, &flowctlv1.HeartbeatRequest{ServiceId: "ledger"}); err != nil {
		t.Fatal(err)
	}
	waitForHeartbeatInState(t, store)
	return tok
}

// waitForHeartbeatInState waits for the one registration's first heartbeat
// to reach the state, at serve's next flush (every second).
func waitForHeartbeatInState(t *testing.T, store *state.Store) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		regs, err := controlplane.ReadRegistrations(store, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(regs) == 1 && regs[0].Heartbeats == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the heartbeat never reached the state: %+v", regs)
		}
	}
}

// assertStatusShowsNoSecret fails when any output holds the token or the
// signing secret.
func assertStatusShowsNoSecret(t *testing.T, store *state.Store, tok string, outputs ...string) {
	t.Helper()
	b, err := os.ReadFile(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		if strings.Contains(o, tok) || strings.Contains(o, string(b)) {
			t.Fatal("status shows a token or the secret")
		}
	}
}

// assertRowsWithServe checks the rows of statusState's components while
// serve runs and source.ledger has registered and heartbeaten.
func assertRowsWithServe(t *testing.T, rows map[string]status.Component) {
	t.Helper()
	l := rows["source.ledger"]
	if l.State != status.StateStarting || l.Executor != "process" || l.Auth != "token" || len(l.RegisteredAs) != 1 ||
		l.RegisteredAs[0].ServiceID != "ledger" || l.RegisteredAs[0].Protocol != "v1" || l.Health != "healthy" || l.HeartbeatAgeSeconds == nil {
		t.Fatalf("source.ledger %+v", l)
	}
	if o := rows["sink.out"]; o.State != status.StateStopped || o.Restarts != 2 || o.Detail != "stopped by the operator" || len(o.RegisteredAs) != 0 {
		t.Fatalf("sink.out %+v", o)
	}
}

func TestStatusJSONWithAndWithoutServe(t *testing.T) {
	store := statusState(t)
	addrs, stop := serveInProcess(t, store)
	tok := registerLedger(t, store, addrs)

	doc, out := statusJSON(t, store.Path())
	if !doc.ControlPlane.Running || doc.ControlPlane.GRPC != addrs.GRPC || doc.ControlPlane.PID != os.Getpid() || doc.Pipeline != "ttp" {
		t.Fatalf("control plane %+v", doc)
	}
	assertRowsWithServe(t, rowsByAddress(doc))
	table := run(t, "status", "--state", store.Path())
	table.wantCode(t, 0)
	if !strings.Contains(table.out, "Control plane: running (pid ") || !strings.Contains(table.out, "ledger (v1)") {
		t.Fatalf("table:\n%s", table.out)
	}
	assertStatusShowsNoSecret(t, store, tok, out, table.out, table.err)

	// Without serve: the registry as last recorded.
	stop()
	doc, _ = statusJSON(t, store.Path())
	if doc.ControlPlane.Running || doc.ControlPlane.PID != 0 {
		t.Fatalf("control plane after stop %+v", doc.ControlPlane)
	}
	l := rowsByAddress(doc)["source.ledger"]
	if l.Address != "source.ledger" || len(l.RegisteredAs) != 1 || l.Auth != "token" || l.LastHeartbeat.IsZero() {
		t.Fatalf("source.ledger without serve %+v", l)
	}
	table = run(t, "status", "--state", store.Path())
	if !strings.Contains(table.out, "Control plane: not running") {
		t.Fatalf("table without serve:\n%s", table.out)
	}
}

func TestStatusNeedsAStateFile(t *testing.T) {
	r := run(t, "status", "--state", filepath.Join(t.TempDir(), "none.state.db"))
	r.wantCode(t, 1)
	r = run(t, "status", "--state", statusState(t).Path(), "-o", "yaml")
	r.wantCode(t, 1)
}

func TestStatusWatchRedrawsUntilInterrupted(t *testing.T) {
	store := statusState(t)
	var errb bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelAfter{n: 3, cancel: cancel}
	g := &globals{streams: Streams{Out: out, Err: &errb}, getenv: os.Getenv}
	ws, err := openWorkspace(g, nil, &stateFlags{statePath: store.Path()}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := watchStatus(ctx, g, ws, "json", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("%d redraws:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		var doc status.Doc
		if err := json.Unmarshal([]byte(l), &doc); err != nil || len(doc.Components) != 2 {
			t.Fatalf("line %q: %v", l, err)
		}
	}
}

// cancelAfter cancels after n writes.
type cancelAfter struct {
	bytes.Buffer
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n--
	if c.n == 0 {
		c.cancel()
	}
	return c.Buffer.Write(p)
}

func TestTokensRotate(t *testing.T) {
	store := statusState(t)
	secretPath := tokens.DefaultSecretPath(store.Path())
	if _, err := tokens.LoadOrCreateSecret(secretPath); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(secretPath)
	var serial uint64
	_ = store.View(func(tx *state.Tx) error { serial = tx.Meta().Serial; return nil })

	r := run(t, "tokens", "rotate", "--state", store.Path())
	r.wantCode(t, 0)
	if !strings.Contains(r.out, "generation 2") || !strings.Contains(r.out, "1 component(s) hold one") {
		t.Fatalf("output:\n%s", r.out)
	}
	after, _ := os.ReadFile(secretPath)
	if bytes.Equal(before, after) || len(after) != tokens.SecretSize {
		t.Fatal("the secret did not change")
	}
	if fi, _ := os.Stat(secretPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	if strings.Contains(r.out, string(after)) || strings.Contains(r.out, string(before)) {
		t.Fatal("the secret is printed")
	}
	var gen, serial2 uint64
	_ = store.View(func(tx *state.Tx) error { gen, serial2 = tx.TokenGeneration(), tx.Meta().Serial; return nil })
	if gen != 2 || serial2 != serial+1 {
		t.Fatalf("generation %d serial %d (was %d)", gen, serial2, serial)
	}
	run(t, "tokens", "rotate", "--state", store.Path()).wantCode(t, 0)
	_ = store.View(func(tx *state.Tx) error { gen = tx.TokenGeneration(); return nil })
	if gen != 3 {
		t.Fatalf("generation %d after a second rotation", gen)
	}
}
