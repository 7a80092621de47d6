package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
)

// killServe kills the background control plane with SIGKILL and waits
// until it is gone; it returns its record.
func (f *fixture) killServe() *serve.Record {
	f.t.Helper()
	cp := f.serveRecord()
	if cp == nil || !cp.Alive() {
		f.t.Fatal("no control plane runs")
	}
	if err := syscall.Kill(cp.Process.PID, syscall.SIGKILL); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, 10*time.Second, "serve to die", func() bool { return !cp.Alive() })
	return cp
}

// registrationOf is the registry's latest registration of addr's current
// instance, as serve persisted it; ok is false before there is one.
func (f *fixture) registrationOf(addr string) (controlplane.Registration, bool) {
	f.t.Helper()
	if _, err := os.Stat(f.statePath()); err != nil {
		return controlplane.Registration{}, false
	}
	st, err := state.Open(f.statePath(), "", state.ReadOnly())
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	regs, err := controlplane.ReadRegistrations(st, time.Now())
	if err != nil {
		f.t.Fatalf("read registrations: %v", err)
	}
	rec := f.records()[addr]
	if rec == nil {
		return controlplane.Registration{}, false
	}
	inst := rec.InstanceID
	var out controlplane.Registration
	var ok bool
	for _, r := range regs {
		if r.Component == addr && r.InstanceID == inst && (!ok || r.RegisteredAt.After(out.RegisteredAt)) {
			out, ok = r, true
		}
	}
	return out, ok
}

// beatingPipeline is one SDK source that registers and heartbeats every
// 300ms, restarted on failure after a long backoff (a restart would show).
func beatingPipeline(f *fixture, sdk string) string {
	return fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "beat" {
  command  = [%q]
  register = true
  env = {
    FLOWCTL_HEARTBEAT_INTERVAL = "300ms"
  }
  restart {
    policy = "on-failure"
    backoff {
      initial = "100ms"
    }
  }
}
`, f.name, sdk)
}

// Finding 1 of #13: a dead control plane is a change plan shows and apply
// makes, on the address it had; status says so first.
func TestDayTwoAKilledControlPlaneIsAChangeApplyMakesOnItsAddress(t *testing.T) {
	f := newFixture(t)
	f.writePipeline([]comp{{kind: "source", id: "a"}})
	f.apply()
	before := f.records()["source.a"]
	dead := f.killServe()

	r := f.must(0, "plan")
	want := fmt.Sprintf("control plane will be started (it is not running: pid %d exited)", dead.Process.PID)
	if !strings.Contains(r.out, want) || !strings.Contains(r.out, "control plane to start.") {
		t.Fatalf("plan does not show the control plane:\n%s", r)
	}
	if r := f.run("plan", "-detailed-exitcode"); r.code != 2 {
		t.Fatalf("plan -detailed-exitcode with a dead control plane: %s", r)
	}
	var pj struct {
		ControlPlane *struct {
			Action, Reason, Detail, Listen string
		} `json:"control_plane"`
	}
	if err := json.Unmarshal([]byte(f.must(0, "plan", "-json").out), &pj); err != nil || pj.ControlPlane == nil ||
		pj.ControlPlane.Action != "start" || pj.ControlPlane.Reason != "control_plane_not_running" || pj.ControlPlane.Listen != dead.GRPC {
		t.Fatalf("plan -json control_plane %+v (%v)", pj.ControlPlane, err)
	}
	if first, _, _ := strings.Cut(f.must(0, "status").out, "\n"); !strings.Contains(first, "CONTROL PLANE NOT RUNNING") {
		t.Fatalf("status's first line: %q", first)
	}

	r = f.apply()
	if !strings.Contains(r.out, "Control plane started in the background on "+dead.Endpoint()) {
		t.Fatalf("apply did not start the control plane on its address %s:\n%s", dead.GRPC, r)
	}
	cp := f.serveRecord()
	if cp == nil || !cp.Alive() || cp.GRPC != dead.GRPC {
		t.Fatalf("control plane after apply: %+v; want one on %s", cp, dead.GRPC)
	}
	if after := f.records()["source.a"]; after.InstanceID != before.InstanceID {
		t.Fatal("apply restarted the component to start the control plane")
	}
	f.assertConverged([]string{"source.a"})
	if first, _, _ := strings.Cut(f.must(0, "status").out, "\n"); strings.Contains(first, "NOT RUNNING") {
		t.Fatalf("status's first line after apply: %q", first)
	}
}

// Finding 2 of #13: after the control plane was down for longer than a
// component's heartbeats allow, the watcher that comes back restarts
// nothing that beats again.
func TestDayTwoAWatcherBackFromAnOutageRestartsNothingHealthy(t *testing.T) {
	f := newFixture(t)
	sdk := testutil.BuildBinaries(t, testutil.WithSDKComponent()).SDKComponent
	const addr = "source.beat"
	f.write("pipeline.hcl", beatingPipeline(f, sdk))
	f.apply()
	first := f.records()[addr].InstanceID
	waitFor(t, 20*time.Second, "heartbeats", func() bool { r, ok := f.registrationOf(addr); return ok && r.Heartbeats > 1 })
	dead := f.killServe()
	last, _ := f.registrationOf(addr)
	// Down for well over 3 heartbeat intervals.
	waitFor(t, 30*time.Second, "a silence of 10 heartbeat intervals", func() bool { return time.Since(last.LastHeartbeat) > 3*time.Second })

	// A serve started by hand, as an operator would.
	srv := exec.Command(f.flowctl, "serve", "--state", f.statePath(), "--http", "none")
	srv.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Wait() }()
	t.Cleanup(func() { _ = srv.Process.Kill() })
	var cp *serve.Record
	waitFor(t, 30*time.Second, "the new serve", func() bool { cp = f.serveRecord(); return cp != nil && cp.Alive() && cp.Process.PID == srv.Process.Pid })
	if cp.GRPC != dead.GRPC {
		t.Fatalf("the new serve listens on %s, not on %s that the components were given", cp.GRPC, dead.GRPC)
	}
	// Beats arrive again, and the grace (3 intervals) passes.
	waitFor(t, 30*time.Second, "heartbeats to the new serve, past the grace", func() bool {
		r, ok := f.registrationOf(addr)
		return ok && r.LastHeartbeat.After(cp.StartedAt) && time.Since(cp.StartedAt) > 2*time.Second
	})
	if evs := f.restarts(addr); len(evs) != 0 {
		t.Fatalf("the watcher restarted a healthy component after the outage: %+v", evs[0])
	}
	if f.records()[addr].InstanceID != first {
		t.Fatal("a new instance after the outage")
	}
}

// Finding 3 of #13: the serve `run --keep` hands over to listens where the
// components were told, and nothing restarts after Ctrl-C.
func TestDayTwoRunKeepHandsOverOnTheSameAddress(t *testing.T) {
	// The ecosystem's default port taken: run's control plane and the one
	// it hands over to both pick another.
	if l, err := net.Listen("tcp", serve.DefaultListen); err == nil {
		t.Cleanup(func() { _ = l.Close() })
	}
	f := newFixture(t)
	sdk := testutil.BuildBinaries(t, testutil.WithSDKComponent()).SDKComponent
	const addr = "source.beat"
	f.write("pipeline.hcl", beatingPipeline(f, sdk))
	var out lockedBuffer
	cmd := f.command(t.Context(), f.dir, "run", "--keep")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, 60*time.Second, "the component to heartbeat", func() bool {
		r, ok := f.registrationOf(addr)
		return ok && r.Heartbeats > 1 && strings.Contains(out.String(), "Following the logs")
	})
	rec := f.records()[addr]
	env, err := procinfo.Environ(childOf(rec.Handle).PID)
	if err != nil {
		t.Fatal(err)
	}
	var given string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "FLOWCTL_ENDPOINT="); ok {
			given = v
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run --keep after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("run --keep did not end\n%s", out.String())
	}
	cp := f.serveRecord()
	if cp == nil || !cp.Alive() || cp.Process.PID == cmd.Process.Pid {
		t.Fatalf("no background control plane after run --keep: %+v\n%s", cp, out.String())
	}
	if cp.Endpoint() != given {
		t.Fatalf("the background control plane listens on %s; the components were given %s", cp.Endpoint(), given)
	}
	waitFor(t, 30*time.Second, "heartbeats to the background serve, past the grace", func() bool {
		r, ok := f.registrationOf(addr)
		return ok && r.LastHeartbeat.After(cp.StartedAt) && time.Since(cp.StartedAt) > 2*time.Second
	})
	if evs := f.restarts(addr); len(evs) != 0 || f.records()[addr].InstanceID != rec.InstanceID {
		t.Fatalf("the component was restarted after the hand-over: %+v", evs)
	}
}

// Finding 4 of #13: a failed apply that started nothing leaves no control
// plane behind, and destroy stops one even when there is nothing else to
// destroy.
func TestDayTwoAFailedApplyAndDestroyLeaveNoControlPlane(t *testing.T) {
	f := newFixture(t)
	f.write("pipeline.hcl", fmt.Sprintf("pipeline %q {\n  executor = \"process\"\n}\n\nsource \"a\" {\n  command = [%q]\n}\n", f.name, f.path("no-such-binary")))
	r := f.run("apply", "-auto-approve")
	if r.code != 1 {
		t.Fatalf("apply of a missing binary: %s", r)
	}
	if cp := f.serveRecord(); cp != nil && cp.Alive() {
		t.Fatalf("a failed apply that started nothing left a control plane (pid %d):\n%s", cp.Process.PID, r)
	}

	srv := exec.Command(f.flowctl, "serve", "--state", f.statePath(), "--listen", "127.0.0.1:0", "--http", "none")
	srv.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	t.Cleanup(func() { _ = srv.Process.Kill() })
	waitFor(t, 30*time.Second, "serve", func() bool { cp := f.serveRecord(); return cp != nil && cp.Alive() })
	r = f.must(0, "destroy", "-auto-approve")
	if !strings.Contains(r.out, "Control plane stopped") {
		t.Fatalf("destroy with nothing to destroy did not stop the control plane:\n%s", r)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the control plane still runs after destroy")
	}
}

// Finding 1 of #13, the unhealthy case: a control plane whose process
// lives but answers nothing (stopped) is restarted by apply, on its
// address.
func TestDayTwoAControlPlaneThatDoesNotAnswerIsRestarted(t *testing.T) {
	f := newFixture(t)
	f.writePipeline([]comp{{kind: "source", id: "a"}})
	f.apply()
	mute := f.serveRecord()
	if err := syscall.Kill(mute.Process.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(mute.Process.PID, syscall.SIGKILL) })
	r := f.must(0, "plan")
	want := fmt.Sprintf("control plane will be restarted (pid %d does not answer on %s", mute.Process.PID, mute.Endpoint())
	if !strings.Contains(r.out, want) || !strings.Contains(r.out, "control plane to restart.") {
		t.Fatalf("plan does not restart a control plane that does not answer:\n%s", r)
	}
	r = f.apply()
	if !strings.Contains(r.out, "Control plane started in the background on "+mute.Endpoint()) {
		t.Fatalf("apply did not restart the control plane on %s:\n%s", mute.GRPC, r)
	}
	if mute.Alive() {
		t.Fatal("the control plane that did not answer still runs")
	}
	if cp := f.serveRecord(); cp == nil || !cp.Alive() || cp.GRPC != mute.GRPC {
		t.Fatalf("control plane after apply: %+v", cp)
	}
	f.assertConverged([]string{"source.a"})
}
