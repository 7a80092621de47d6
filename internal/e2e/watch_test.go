package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/watch"
)

// history reads the state's history events.
func (f *fixture) history() []*state.Event {
	f.t.Helper()
	st, err := state.Open(f.statePath(), "")
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	var evs []*state.Event
	if err := st.View(func(tx *state.Tx) error {
		var err error
		evs, err = tx.History(0)
		return err
	}); err != nil {
		f.t.Fatalf("read history: %v", err)
	}
	return evs
}

// restarts are the watcher's restart events of addr, oldest first.
func (f *fixture) restarts(addr string) []*state.Event {
	var out []*state.Event
	for _, ev := range f.history() {
		if ev.Operation == "restart" && ev.Address == addr && ev.Action == "restart" {
			out = append(out, ev)
		}
	}
	return out
}

// watchState is the watcher's persisted tracker state of addr.
func (f *fixture) watchState(addr string) (watch.State, bool) {
	f.t.Helper()
	st, err := state.Open(f.statePath(), "")
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	var b []byte
	_ = st.View(func(tx *state.Tx) error {
		b = append([]byte(nil), tx.GetData(watch.DataNamespace, addr)...)
		return nil
	})
	if len(b) == 0 {
		return watch.State{}, false
	}
	s, err := watch.UnmarshalState(b)
	if err != nil {
		f.t.Fatal(err)
	}
	return s, true
}

// cpuTicks is the user+system CPU time of a process, in clock ticks.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseUint(fields[11], 10, 64)
	k, _ := strconv.ParseUint(fields[12], 10, 64)
	return u + k
}

func crashyPipeline(f *fixture, env string, initial string) string {
	return fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "crashy" {
  command = [%q]
  env = {
%s
  }
  restart {
    policy      = "on-failure"
    max_retries = 3
    backoff {
      initial    = %q
      multiplier = 2
      max        = "10s"
    }
  }
}
`, f.name, f.tc, env, initial)
}

func TestWatcherBacksOffACrashLoopThenAHealthyStartResetsIt(t *testing.T) {
	f := newFixture(t)
	const addr = "source.crashy"
	f.write("pipeline.hcl", crashyPipeline(f, `    TC_EXIT_AFTER = "200ms"
    TC_EXIT_CODE  = "2"`, "300ms"))
	f.apply()
	cp := f.serveRecord()
	if cp == nil || !cp.Alive() {
		t.Fatal("no control plane after apply")
	}
	cpu0, wall0 := cpuTicks(t, cp.Process.PID), time.Now()

	waitFor(t, 60*time.Second, "crashloop", func() bool { return f.records()[addr].Status == state.StatusCrashloop })
	cpu, wall := cpuTicks(t, cp.Process.PID)-cpu0, time.Since(wall0)

	evs := f.restarts(addr)
	if len(evs) != 3 {
		t.Fatalf("want 3 restarts before crashloop, got %d: %+v", len(evs), evs)
	}
	// Attempt n waits 300ms × 2^(n-1), ±10%: the delay recorded, and the
	// time between two starts (the instance runs 200 ms, then the delay).
	prev := f.records()[addr].CreatedAt
	for i, ev := range evs {
		base := 300 * time.Millisecond << i
		d, err := time.ParseDuration(ev.Delay)
		if err != nil || ev.Attempt != i+1 || ev.Reason != "exited code=2" {
			t.Fatalf("restart %d: %+v", i+1, ev)
		}
		if d < base*9/10 || d > base*11/10 {
			t.Errorf("restart %d: delay %s, want %s ±10%%", i+1, d, base)
		}
		if i > 0 {
			gap := ev.Time.Sub(prev)
			if gap < d+150*time.Millisecond || gap > d+200*time.Millisecond+3*time.Second {
				t.Errorf("restart %d came %s after the previous start; want its delay %s plus the 200ms run (and some slack)", i+1, gap, d)
			}
		}
		prev = ev.Time
	}
	rec := f.records()[addr]
	if rec.RestartCount != 3 || rec.LastExitCode == nil || *rec.LastExitCode != 2 || !strings.Contains(rec.StatusReason, "exited code=2") {
		t.Fatalf("record after crashloop: %+v", rec)
	}
	// Backing off costs next to nothing: serve is idle between attempts.
	if share := float64(cpu) / 100 / wall.Seconds(); share > 0.25 {
		t.Errorf("serve used %.0f%% of a CPU during the crash loop", share*100)
	}
	// status says so.
	if out := f.must(0, "status").out; !strings.Contains(out, "crashloop") {
		t.Errorf("status does not show the crashloop:\n%s", out)
	}

	// A fixed configuration applied by hand starts a healthy instance: the
	// streak is over.
	f.write("pipeline.hcl", crashyPipeline(f, `    TC_PRINT = "alive"`, "300ms"))
	f.apply()
	waitFor(t, 10*time.Second, "the watcher to see the new instance", func() bool {
		s, ok := f.watchState(addr)
		return ok && s.Instance == f.records()[addr].InstanceID && s.Phase == watch.PhaseRunning && s.Attempt == 0
	})
	if rec := f.records()[addr]; rec.Status != state.StatusRunning {
		t.Fatalf("after the fix: %+v", rec)
	}
}

func TestWatcherRestartsAKilledProcessAtOnce(t *testing.T) {
	f := newFixture(t)
	const addr = "source.a"
	f.writePipeline([]comp{{kind: "source", id: "a", env: map[string]string{"TC_START_DELAY": "100ms"}}})
	f.apply()
	before := f.records()[addr]
	child := childOf(before.Handle)
	if err := syscall.Kill(child.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a new running instance", func() bool {
		r := f.records()[addr]
		return r.InstanceID != before.InstanceID && r.Status == state.StatusRunning
	})
	evs := f.restarts(addr)
	if len(evs) != 1 || evs[0].Reason != "killed by SIGKILL" || evs[0].Attempt != 1 {
		t.Fatalf("restart events: %+v", evs)
	}
	if r := f.records()[addr]; r.RestartCount != 1 {
		t.Fatalf("restart count %d", r.RestartCount)
	}
	f.assertConverged([]string{addr})
}

func TestWatcherRestartsAComponentThatStopsHeartbeating(t *testing.T) {
	f := newFixture(t)
	sdk := testutil.BuildBinaries(t, testutil.WithSDKComponent()).SDKComponent
	const addr = "source.beat"
	f.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "beat" {
  command  = [%q]
  register = true
  env = {
    FLOWCTL_HEARTBEAT_INTERVAL = "300ms"
    TC_HEARTBEAT_STOP          = "1500ms"
  }
  restart {
    policy = "on-failure"
    backoff {
      initial = "100ms"
    }
  }
}
`, f.name, sdk))
	f.apply()
	first := f.records()[addr].InstanceID
	waitFor(t, 30*time.Second, "a restart for missed heartbeats", func() bool { return len(f.restarts(addr)) > 0 })
	ev := f.restarts(addr)[0]
	if !strings.HasPrefix(ev.Reason, "heartbeat missed for ") {
		t.Fatalf("restart reason %q", ev.Reason)
	}
	waitFor(t, 20*time.Second, "the new instance", func() bool {
		r := f.records()[addr]
		return r.InstanceID != first && r.Status == state.StatusRunning
	})
}

func TestWatcherRestartedMidBackoffKeepsTheSchedule(t *testing.T) {
	f := newFixture(t)
	const addr = "source.crashy"
	f.write("pipeline.hcl", crashyPipeline(f, `    TC_EXIT_AFTER = "100ms"
    TC_EXIT_CODE  = "3"`, "4s"))
	f.apply()
	// Wait for the first failure: attempt 1 is pending for 4s.
	var pending watch.State
	waitFor(t, 20*time.Second, "a pending first attempt", func() bool {
		s, ok := f.watchState(addr)
		pending = s
		return ok && s.Phase == watch.PhaseBackoff && s.Attempt == 1
	})
	cp := f.serveRecord()
	if err := syscall.Kill(cp.Process.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "serve to die", func() bool { return !cp.Alive() })
	// A new serve picks the schedule up where it was.
	statePath := f.statePath()
	cmd := exec.Command(f.flowctl, "serve", "--state", statePath, "--listen", "127.0.0.1:0", "--http", "none")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	waitFor(t, 30*time.Second, "the pending attempt", func() bool { return len(f.restarts(addr)) >= 1 })
	ev := f.restarts(addr)[0]
	if ev.Attempt != 1 || ev.Delay != pending.Delay.String() {
		t.Fatalf("first restart %+v; pending was attempt 1 after %s", ev, pending.Delay)
	}
	if early := pending.NextAttempt.Sub(ev.Time); early > 100*time.Millisecond {
		t.Fatalf("the restart came %s before its due time %s", early, pending.NextAttempt)
	}
	// The next failure is attempt 2, with twice the delay.
	waitFor(t, 30*time.Second, "attempt 2 pending", func() bool {
		s, ok := f.watchState(addr)
		return ok && s.Attempt == 2
	})
	if s, _ := f.watchState(addr); s.Delay < 7200*time.Millisecond || s.Delay > 8800*time.Millisecond {
		t.Fatalf("attempt 2 delay %s, want 8s ±10%%", s.Delay)
	}
}

func TestWatcherRestartsAKilledContainer(t *testing.T) {
	df := newDockerFixture(t)
	const addr = "source.box"
	df.writeDocker([]dcomp{{kind: "source", id: "box",
		extra: "  restart {\n    policy = \"on-failure\"\n    backoff {\n      initial = \"100ms\"\n    }\n  }\n"}})
	df.apply()
	before := df.records()[addr]
	// The engine's die event wakes the watcher.
	docker(t, "kill", containerOf(before.Handle))
	waitFor(t, 60*time.Second, "a new running container", func() bool {
		r := df.records()[addr]
		return r.InstanceID != before.InstanceID && r.Status == state.StatusRunning
	})
	evs := df.restarts(addr)
	// The engine reports a container killed by SIGKILL as exited with
	// 128+9.
	if len(evs) != 1 || evs[0].Reason != "exited code=137" || evs[0].Attempt != 1 {
		t.Fatalf("restart events: %+v", evs)
	}
	rec := df.records()[addr]
	if containerOf(rec.Handle) == containerOf(before.Handle) || rec.RestartCount != 1 {
		t.Fatalf("record after the restart: %+v", rec)
	}
	df.assertDockerConverged([]string{addr})
}
