package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
)

// freePort is a port nothing listens on now, for a component's fixed
// port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// registrations reads the control plane's registry from the state file.
func (f *fixture) registrations() []controlplane.Registration {
	f.t.Helper()
	st, err := state.Open(f.statePath(), "")
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	regs, err := controlplane.ReadRegistrations(st, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return regs
}

// attestedAs is the proof of the latest registration of addr ("" when
// none).
func attestedAs(regs []controlplane.Registration, addr string) string {
	var latest *controlplane.Registration
	for i := range regs {
		if r := &regs[i]; r.Component == addr && (latest == nil || r.RegisteredAt.After(latest.RegisteredAt)) {
			latest = r
		}
	}
	if latest == nil {
		return ""
	}
	return latest.Proof
}

// ecoPipeline is the ecosystem's components as a new user writes them,
// none sending a token, each registering: an older-protocol source with no
// id, a current-protocol processor with its id, one that wants PORT as
// ":N", and one that always listens on fixed ports.
func ecoPipeline(name, executor, program string, fixedPort, fixedHealth int, extra string) string {
	return fmt.Sprintf(`pipeline %[1]q {
  executor = %[2]q
}

source "old" {
  %[3]s
  register = true
  env = {
    ECO_MODE = "legacy"
  }
}

processor "cur" {
  %[3]s
  inputs   = [source.old]
  register = true
  env = {
    ECO_MODE = "v1"
  }%[6]s
}

processor "colon" {
  %[3]s
  inputs   = [source.old]
  register = true
  env = {
    ECO_MODE = "colon"
    PORT     = ":${self.port}"
  }
}

sink "fixed" {
  %[3]s
  inputs      = [processor.cur, processor.colon]
  register    = true
  fixed_ports = { PORT = %[4]d, HEALTH_PORT = %[5]d }
  env = {
    ECO_MODE         = "fixed"
    ECO_FIXED_PORT   = "%[4]d"
    ECO_FIXED_HEALTH = "%[5]d"
  }
  health {
    http = "/health"
  }
}
`, name, executor, program, fixedPort, fixedHealth, extra)
}

var ecoAddrs = []string{"processor.colon", "processor.cur", "sink.fixed", "source.old"}

// Components that send no token apply in one `flowctl apply` under the
// default auth mode: each registration is attested as the process flowctl
// started; the one that wants ":N" listens on the port flowctl records;
// the one with fixed ports is recorded with them. A local process that is
// no component is refused when it claims a component's id, and a killed
// component's new instance is attested in turn.
func TestTokenlessComponentsApplyInOneGoAttestedByProcess(t *testing.T) {
	f := newFixture(t)
	eco := testutil.BuildBinaries(t, testutil.WithEcoComponent()).EcoComponent
	fp, fh := freePort(t), freePort(t)
	f.write("pipeline.hcl", ecoPipeline(f.name, "process", fmt.Sprintf("command = [%q]", eco), fp, fh, ""))
	f.apply()
	f.assertConverged(ecoAddrs)

	recs := f.records()
	regs := f.registrations()
	for _, a := range ecoAddrs {
		want := "attested:pid " + strconv.Itoa(childOf(recs[a].Handle).PID)
		if got := attestedAs(regs, a); got != want {
			t.Errorf("%s: proof %q, want %q (registrations %+v)", a, got, want, regs)
		}
	}
	if p := recs["sink.fixed"].Ports; p["PORT"] != fp || p["HEALTH_PORT"] != fh {
		t.Errorf("sink.fixed recorded ports %v, want PORT %d HEALTH_PORT %d", p, fp, fh)
	}
	// processor.colon listens where flowctl says: PORT=":N" and N recorded.
	port := recs["processor.colon"].Ports["PORT"]
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("processor.colon does not listen on its recorded port %d: %v", port, err)
	}
	_ = c.Close()
	if out := f.must(0, "status").out; !strings.Contains(out, "attested:pid") {
		t.Errorf("status does not show the attestation:\n%s", out)
	}

	// An unrelated local process claiming processor.cur's id.
	cp := f.serveRecord()
	imp := exec.Command(eco)
	imp.Env = append(os.Environ(), "ECO_MODE=v1", "ECO_ID=cur", "FLOWCTL_ENDPOINT="+cp.Addrs.GRPC)
	var out bytes.Buffer
	imp.Stdout, imp.Stderr = &out, &out
	err = imp.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(out.String(), "could not be attested because") {
		t.Fatalf("an unrelated process claiming cur's id was not refused: %v\n%s", err, out.String())
	}

	// Kill processor.cur: the watcher starts a new instance, attested in
	// turn.
	old := childOf(recs["processor.cur"].Handle)
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var now string
	waitFor(t, 60*time.Second, "processor.cur's new instance to be attested", func() bool {
		rec := f.records()["processor.cur"]
		child := childOf(rec.Handle)
		if child == old || rec.Status != state.StatusRunning {
			return false
		}
		now = "attested:pid " + strconv.Itoa(child.PID)
		return attestedAs(f.registrations(), "processor.cur") == now
	})
}

// A component whose own auth asks for tokens, and that sends none, makes
// apply fail at once with the control plane's reason: the readiness
// timeout (5m, beyond the harness's bound on a command) is never waited
// out.
func TestApplyFailsFastWithTheControlPlanesRefusal(t *testing.T) {
	f := newFixture(t)
	eco := testutil.BuildBinaries(t, testutil.WithEcoComponent()).EcoComponent
	f.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "cur" {
  command       = [%q]
  register      = true
  auth          = "token"
  ready_timeout = "5m"
  restart {
    policy = "never"
  }
  env = {
    ECO_MODE = "v1"
  }
}
`, f.name, eco))
	r := f.must(1, "apply", "-auto-approve")
	for _, want := range []string{"the control plane refused its registration", "no token (auth = token for source.cur", "attested (pid"} {
		if !strings.Contains(r.out+r.err, want) {
			t.Errorf("apply output lacks %q\n%s", want, r)
		}
	}
}

// Under `flowctl run` (its control plane in-process) the same components
// start in one go, each attested.
func TestTokenlessComponentsRunUnderFlowctlRun(t *testing.T) {
	f := newFixture(t)
	eco := testutil.BuildBinaries(t, testutil.WithEcoComponent()).EcoComponent
	f.write("pipeline.hcl", ecoPipeline(f.name, "process", fmt.Sprintf("command = [%q]", eco), freePort(t), freePort(t), ""))
	var out lockedBuffer
	cmd := f.command(context.Background(), f.dir, "run")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, 60*time.Second, "every component running and attested", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run ended: %v\n%s", err, out.String())
		default:
		}
		if _, err := os.Stat(f.statePath()); err != nil {
			return false
		}
		recs := f.records()
		if len(recs) != len(ecoAddrs) {
			return false
		}
		regs := f.registrations()
		for _, a := range ecoAddrs {
			rec := recs[a]
			if rec.Status != state.StatusRunning || attestedAs(regs, a) != "attested:pid "+strconv.Itoa(childOf(rec.Handle).PID) {
				return false
			}
		}
		return true
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not end after Ctrl-C\n%s", out.String())
	}
	f.assertNoProcesses()
}

// The YAML spelling: `PORT: ":${self.port}"` and fixed_ports, applied in
// one go, each component attested.
func TestTokenlessComponentsFromYAMLApplyInOneGo(t *testing.T) {
	f := newFixture(t)
	eco := testutil.BuildBinaries(t, testutil.WithEcoComponent()).EcoComponent
	fp, fh := freePort(t), freePort(t)
	f.write("pipeline.yaml", fmt.Sprintf(`apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: %[1]s
spec:
  driver: process
  sources:
    - id: old
      command: [%[2]q]
      register: true
      env:
        ECO_MODE: legacy
  processors:
    - id: colon
      command: [%[2]q]
      inputs: [old]
      register: true
      env:
        ECO_MODE: colon
        PORT: ":${self.port}"
  sinks:
    - id: fixed
      command: [%[2]q]
      inputs: [colon]
      register: true
      fixed_ports:
        PORT: %[3]d
        HEALTH_PORT: %[4]d
      health_check: /health
      env:
        ECO_MODE: fixed
        ECO_FIXED_PORT: "%[3]d"
        ECO_FIXED_HEALTH: "%[4]d"
`, f.name, eco, fp, fh))
	f.apply()
	recs := f.records()
	regs := f.registrations()
	for _, a := range []string{"source.old", "processor.colon", "sink.fixed"} {
		want := "attested:pid " + strconv.Itoa(childOf(recs[a].Handle).PID)
		if got := attestedAs(regs, a); got != want {
			t.Errorf("%s: proof %q, want %q", a, got, want)
		}
	}
	if p := recs["sink.fixed"].Ports; p["PORT"] != fp || p["HEALTH_PORT"] != fh {
		t.Errorf("sink.fixed recorded ports %v, want %d and %d", p, fp, fh)
	}
	port := recs["processor.colon"].Ports["PORT"]
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("processor.colon does not listen on its recorded port %d: %v", port, err)
	}
	_ = c.Close()
}
