package serve

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// serveProcess is `flowctl serve` run as its own process.
type serveProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	rec    *Record
	exited chan struct{}
}

// startServeBinary runs `flowctl serve --state ...` on free ports and waits
// for its record to appear in the state.
func startServeBinary(t *testing.T, flowctl string, store *state.Store) *serveProcess {
	t.Helper()
	p := &serveProcess{stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(flowctl, "serve", "--state", store.Path(), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rec, err := WaitRecord(ctx, store, p.cmd.Process.Pid, p.exited)
	if err != nil {
		t.Fatalf("flowctl serve did not come up (exited, or no record): %v\n%s", err, p.stderr)
	}
	p.rec = rec
	return p
}

// waitFor polls cond until it holds (or fails the test after a generous
// deadline: this bounds a hang, it measures nothing).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeKilledAndRestartedKeepsTheRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the flowctl binary")
	}
	bins := testutil.BuildBinaries(t, testutil.WithFlowctl())
	store := newState(t)
	first := startServeBinary(t, bins.Flowctl, store)

	iss := issuer(t, store) // the secret the first serve created
	ledgerTok := token(t, store, iss, "source.ledger", "i-ledger")
	ttpTok := token(t, store, iss, "processor.ttp", "i-ttp")
	c := dial(t, first.rec.Endpoint(), nil)
	resp, err := c.v1.RegisterComponent(as(ledgerTok), &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{Id: "ledger", Type: flowctlv1.ComponentType_COMPONENT_TYPE_SOURCE}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := c.legacy.Register(as(ttpTok), &flowctlpb.ServiceInfo{ServiceType: flowctlpb.ServiceType_SERVICE_TYPE_PROCESSOR, HealthEndpoint: "http://localhost:18089/health"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.v1.Heartbeat(as(ledgerTok), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.legacy.Heartbeat(as(ttpTok), &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId}); err != nil {
		t.Fatal(err)
	}
	heartbeats := func() map[string]uint64 {
		regs, err := controlplane.ReadRegistrations(store, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, r := range regs {
			out[r.Component] = r.Heartbeats
		}
		return out
	}
	waitFor(t, "the heartbeats to reach the state", func() bool {
		hb := heartbeats()
		return hb["source.ledger"] == 1 && hb["processor.ttp"] == 1
	})

	// kill -9: no cleanup at all.
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	rec, err := ReadRecord(store)
	if err != nil || rec == nil || rec.Alive() {
		t.Fatalf("after kill -9 the record should be left, dead: %+v %v", rec, err)
	}

	second := startServeBinary(t, bins.Flowctl, store)
	c2 := dial(t, second.rec.Endpoint(), nil)
	// Components keep heartbeating with the ids they were given.
	if _, err := c2.v1.Heartbeat(as(ledgerTok), &flowctlv1.HeartbeatRequest{ServiceId: resp.ServiceId}); err != nil {
		t.Fatalf("v1 heartbeat after restart: %v", err)
	}
	if _, err := c2.legacy.Heartbeat(as(ttpTok), &flowctlpb.ServiceHeartbeat{ServiceId: ack.ServiceId}); err != nil {
		t.Fatalf("legacy heartbeat after restart: %v", err)
	}
	st, err := c2.v1.GetComponentStatus(as(ledgerTok), &flowctlv1.ComponentStatusRequest{ServiceId: resp.ServiceId})
	if err != nil || st.Component.GetId() != "ledger" {
		t.Fatalf("status after restart: %v %v", st, err)
	}

	// SIGTERM: a graceful stop flushes the registry and removes the record.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-second.exited
	if code := second.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM\n%s", code, second.stderr)
	}
	if rec, err := ReadRecord(store); err != nil || rec != nil {
		t.Fatalf("record after a graceful stop: %+v %v", rec, err)
	}
	if hb := heartbeats(); hb["source.ledger"] != 2 || hb["processor.ttp"] != 2 || len(hb) != 2 {
		t.Fatalf("registry after restart: %v", hb)
	}

	secret, err := os.ReadFile(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	logs := first.stderr.String() + second.stderr.String()
	if !strings.Contains(logs, "component registered") || !strings.Contains(logs, "control plane stopped") {
		t.Fatalf("unexpected logs:\n%s", logs)
	}
	for name, s := range map[string]string{"ledger token": ledgerTok, "ttp token": ttpTok, "secret": string(secret)} {
		if strings.Contains(logs, s) {
			t.Errorf("serve logged the %s", name)
		}
	}
}
