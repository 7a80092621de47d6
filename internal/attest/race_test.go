//go:build linux

package attest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/attest"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/process"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

const (
	pipeline = "race"
	lineage  = "lin-race"
)

// cp is a control plane over real gRPC on loopback whose expected
// components the test sets (as apply's state writes would), attesting with
// the real process executor.
type cp struct {
	srv    *controlplane.Server
	addr   string
	exp    *controlplane.StaticExpected
	issuer *tokens.Issuer
}

func newCP(t testing.TB, mode controlplane.AuthMode) *cp {
	t.Helper()
	secret, err := tokens.NewSecret([]byte("attest-race-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	exp := controlplane.NewStaticExpected()
	srv, err := controlplane.New(controlplane.Options{
		Verifier: tokens.NewVerifier(secret, pipeline, lineage),
		Issuer:   tokens.NewIssuer(secret),
		AuthMode: mode,
		Expected: exp,
		Attestor: attest.Providers{Registry: providers.NewRegistry(process.New(process.Options{Dir: t.TempDir()}))},
		// Only the refreshes a call forces count: the periodic one never
		// comes within a test.
		ExpectedRefresh: time.Hour,
		PendingWait:     10 * time.Second,
		AttestWait:      10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(controlplane.GRPCServerOptions()...)
	srv.Register(gs)
	go func() { _ = gs.Serve(l) }()
	t.Cleanup(func() { gs.Stop(); _ = srv.Close() })
	return &cp{srv: srv, addr: l.Addr().String(), exp: exp, issuer: tokens.NewIssuer(secret)}
}

// processHandle is the process executor's handle of a process started
// outside a shim: what state would record for it.
func processHandle(t testing.TB, addr string, pid int) []byte {
	t.Helper()
	id, err := procinfo.Of(pid)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"address": addr, "run_record": "/nonexistent/run.json", "log_path": "/nonexistent/log", "child": id})
	return b
}

// eco starts the eco component with env, and returns it with its first
// line of output.
func eco(t testing.TB, env ...string) (*exec.Cmd, func() string) {
	t.Helper()
	bin := testutil.BuildBinaries(t, testutil.WithEcoComponent()).EcoComponent
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rd := bufio.NewReader(out)
	line := func() string {
		s, err := rd.ReadString('\n')
		if err != nil && err != io.EOF {
			t.Fatalf("read eco output: %v", err)
		}
		return strings.TrimSpace(s)
	}
	return cmd, line
}

// Each round a process registers with no id and no token at the very
// first instant of its life, before the state names it; the state learns
// of it only after the process runs (as apply writes the record after the
// executor's Start returns). Each round it must be attributed to its
// component by attestation, never left unmanaged; and a token for src
// that names a component the state has just recorded is refused as
// impersonation, never accepted on a stale view.
func TestRegistrationAtFirstInstantIsAttributedEveryRound(t *testing.T) {
	const rounds = 60
	c := newCP(t, controlplane.AuthRequired)
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v1 := flowctlv1.NewControlPlaneServiceClient(conn)
	srcTok, err := c.issuer.Issue(tokens.Subject{Address: "source.src", Pipeline: pipeline, Lineage: lineage, InstanceID: "i-src"})
	if err != nil {
		t.Fatal(err)
	}
	src := controlplane.ExpectedComponent{Address: "source.src", ID: "src", InstanceID: "i-src"}
	for i := range rounds {
		failed := c.srv.Metrics().AttestationFailures
		cmd, line := eco(t, "ECO_MODE=legacy", "ECO_HEARTBEAT=1h", "FLOWCTL_ENDPOINT="+c.addr)
		inst := fmt.Sprintf("i-old-%d", i)
		old := controlplane.ExpectedComponent{Address: "source.old", ID: "old", InstanceID: inst, Provider: process.Name,
			Handle: processHandle(t, "source.old", cmd.Process.Pid)}
		// The state names the instance only once its registration has
		// been looked at and could not be attested yet.
		for c.srv.Metrics().AttestationFailures == failed {
			time.Sleep(time.Millisecond)
		}
		c.exp.Set(src, old)
		got := line()
		want := fmt.Sprintf("pid=%d", cmd.Process.Pid)
		if !strings.HasPrefix(got, "registered ") || !strings.HasSuffix(got, want) {
			t.Fatalf("round %d: eco said %q", i, got)
		}
		sid := strings.Fields(got)[1]
		r, ok := c.srv.Lookup(sid)
		if !ok || r.Component != "source.old" || r.AttributedBy != controlplane.ByAttestation ||
			r.Proof != "attested:pid "+fmt.Sprint(cmd.Process.Pid) || r.InstanceID != inst {
			t.Fatalf("round %d: registration %+v", i, r)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		// The impersonation check on a view the state has just changed.
		snk := fmt.Sprintf("snk%d", i)
		c.exp.Set(src, old, controlplane.ExpectedComponent{Address: "sink." + snk, ID: snk, InstanceID: "i-" + snk})
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+srcTok)
		_, err := v1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{ComponentId: snk})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), controlplane.ReasonImpersonation) {
			t.Fatalf("round %d: src's token registering as %s: %v", i, snk, err)
		}
	}
}

// A local process that is no component, claiming a component's id
// without a token, is refused: it cannot be attested.
func TestUnrelatedProcessClaimingAComponentIDIsRefused(t *testing.T) {
	testutil.BuildBinaries(t, testutil.WithEcoComponent()) // before the clock of the sleeper starts
	c := newCP(t, controlplane.AuthRequired)
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	c.exp.Set(controlplane.ExpectedComponent{Address: "processor.cur", ID: "cur", InstanceID: "i-cur", Provider: process.Name,
		Handle: processHandle(t, "processor.cur", sleeper.Process.Pid)})
	cmd, line := eco(t, "ECO_MODE=v1", "ECO_ID=cur", "FLOWCTL_ENDPOINT="+c.addr)
	got := line()
	if !strings.HasPrefix(got, "refused:") || !strings.Contains(got, "could not be attested because") ||
		!strings.Contains(got, "belongs to no process of the pipeline's components") {
		t.Fatalf("eco said %q", got)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the refused process exited 0")
	}
	if regs := c.srv.Snapshot(); len(regs) != 0 {
		t.Fatalf("registered: %+v", regs)
	}
	var seen bool
	for _, f := range c.srv.Refusals() {
		seen = seen || f.Component == "processor.cur" && f.Reason == "missing"
	}
	if !seen {
		t.Fatalf("refusal not kept for processor.cur: %+v", c.srv.Refusals())
	}
}

// BenchmarkProcessAttestation measures one attestation (what a new
// connection without a token costs once): the socket found in the kernel's
// tables, then among the descriptors of the pipeline's processes — here
// the component that holds it, after 9 other live processes.
func BenchmarkProcessAttestation(b *testing.B) {
	c := newCP(b, controlplane.AuthRequired)
	var list []controlplane.ExpectedComponent
	for i := range 9 {
		s := exec.Command("sleep", "600")
		if err := s.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Process.Kill(); _ = s.Wait() })
		addr := fmt.Sprintf("sink.s%d", i)
		list = append(list, controlplane.ExpectedComponent{Address: addr, ID: fmt.Sprint("s", i), InstanceID: "i", Provider: process.Name,
			Handle: processHandle(b, addr, s.Process.Pid)})
	}
	cmd, line := eco(b, "ECO_MODE=legacy", "ECO_HEARTBEAT=1h", "FLOWCTL_ENDPOINT="+c.addr)
	list = append(list, controlplane.ExpectedComponent{Address: "source.old", ID: "old", InstanceID: "i", Provider: process.Name,
		Handle: processHandle(b, "source.old", cmd.Process.Pid)})
	c.exp.Set(list...)
	if got := line(); !strings.HasPrefix(got, "registered ") {
		b.Fatalf("eco said %q", got)
	}
	regs := c.srv.Snapshot()
	if len(regs) != 1 || regs[0].Component != "source.old" {
		b.Fatalf("%+v", regs)
	}
	peer := netip.MustParseAddrPort(regs[0].RemoteAddr)
	local := netip.MustParseAddrPort(c.addr)
	a := attest.Providers{Registry: providers.NewRegistry(process.New(process.Options{Dir: b.TempDir()}))}
	ctx := context.Background()
	// CPU time (user and system) per attestation, which a busy machine
	// does not inflate as it does the wall time of ns/op.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	n, start := 0, cpu()
	for b.Loop() {
		got, err := a.Attest(ctx, peer, local, list)
		if err != nil || got.Address != "source.old" {
			b.Fatalf("%+v %v", got, err)
		}
		n++
	}
	b.ReportMetric(float64((cpu()-start).Nanoseconds())/float64(n), "cpu-ns/op")
}

// A connection is attested once: the heartbeats that follow the
// registration on it reuse the proof.
func TestAConnectionIsAttestedOnce(t *testing.T) {
	c := newCP(t, controlplane.AuthRequired)
	cmd, line := eco(t, "ECO_MODE=legacy", "ECO_HEARTBEAT=20ms", "FLOWCTL_ENDPOINT="+c.addr)
	c.exp.Set(controlplane.ExpectedComponent{Address: "source.old", ID: "old", InstanceID: "i", Provider: process.Name,
		Handle: processHandle(t, "source.old", cmd.Process.Pid)})
	got := line()
	if !strings.HasPrefix(got, "registered ") {
		t.Fatalf("eco said %q", got)
	}
	sid := strings.Fields(got)[1]
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, _ := c.srv.Lookup(sid)
		if r.Heartbeats >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeats: %+v", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m := c.srv.Metrics(); m.Attestations != 1 {
		t.Fatalf("%d attestations for one connection (registration and %d heartbeats)", m.Attestations, m.Heartbeats)
	}
}

// An attested component that claims another component's id is refused
// as impersonation: the attestation, not the id, says who it is.
func TestAttestedComponentClaimingAnotherIDIsRefused(t *testing.T) {
	testutil.BuildBinaries(t, testutil.WithEcoComponent())
	c := newCP(t, controlplane.AuthRequired)
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	cmd, line := eco(t, "ECO_MODE=v1", "ECO_ID=cur", "FLOWCTL_ENDPOINT="+c.addr)
	c.exp.Set(
		controlplane.ExpectedComponent{Address: "source.old", ID: "old", InstanceID: "i-old", Provider: process.Name, Handle: processHandle(t, "source.old", cmd.Process.Pid)},
		controlplane.ExpectedComponent{Address: "processor.cur", ID: "cur", InstanceID: "i-cur", Provider: process.Name, Handle: processHandle(t, "processor.cur", other.Process.Pid)},
	)
	got := line()
	if !strings.HasPrefix(got, "refused:") || !strings.Contains(got, controlplane.ReasonImpersonation) ||
		!strings.Contains(got, fmt.Sprintf("attested as source.old (pid %d); it cannot act as processor.cur", cmd.Process.Pid)) {
		t.Fatalf("eco said %q", got)
	}
	if regs := c.srv.Snapshot(); len(regs) != 0 {
		t.Fatalf("registered: %+v", regs)
	}
}
