package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusOut is `status -o json` as the tests read it.
type statusOut struct {
	Pipeline     string `json:"pipeline"`
	ControlPlane struct {
		Running bool   `json:"running"`
		PID     int    `json:"pid"`
		GRPC    string `json:"grpc"`
	} `json:"control_plane"`
	Components []struct {
		Address       string   `json:"address"`
		Executor      string   `json:"executor"`
		State         string   `json:"state"`
		Detail        string   `json:"detail"`
		UptimeSeconds *float64 `json:"uptime_seconds"`
		InState       bool     `json:"in_state"`
	} `json:"components"`
}

func (f *fixture) status(args ...string) statusOut {
	f.t.Helper()
	r := f.must(0, append([]string{"status", "-o", "json"}, args...)...)
	var s statusOut
	if err := json.Unmarshal([]byte(r.out), &s); err != nil {
		f.t.Fatalf("decode status -o json: %v\n%s", err, r)
	}
	return s
}

func (s statusOut) states() map[string]string {
	out := map[string]string{}
	for _, c := range s.Components {
		out[c.Address] = c.State
	}
	return out
}

func TestStatusFollowsRealityAndTheControlPlane(t *testing.T) {
	f := newFixture(t)
	cs := []comp{{kind: "source", id: "src"}, {kind: "sink", id: "out", inputs: []string{"source.src"}}}
	f.writePipeline(cs)
	if got := f.status().states(); got["source.src"] != "missing" || got["sink.out"] != "missing" {
		t.Fatalf("before apply: %v", got)
	}
	f.apply()
	s := f.status()
	for _, c := range s.Components {
		if c.State != "running" || c.Executor != "process" || !c.InState || c.UptimeSeconds == nil {
			t.Fatalf("after apply: %+v", s.Components)
		}
	}

	// From the state file alone, in another folder.
	r := f.runIn(t.TempDir(), "status", "--state", f.statePath())
	if r.code != 0 || !strings.Contains(r.out, "source.src") || !strings.Contains(r.out, "running") {
		t.Fatalf("status --state\n%s", r)
	}

	// With serve running for this state file (apply may have started one),
	// the header says so.
	if !s.ControlPlane.Running {
		srv := f.command(t.Context(), f.dir, "serve", "--state", f.statePath(), "--listen", "127.0.0.1:0", "--http", "none")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Wait() }()
		t.Cleanup(func() { _ = srv.Process.Kill() })
		waitFor(t, 30*time.Second, "serve to record itself", func() bool { return f.status().ControlPlane.Running })
	}
	if r := f.must(0, "status"); !strings.Contains(r.out, "Control plane: running") {
		t.Fatalf("status with serve\n%s", r)
	}
	if err := syscall.Kill(f.status().ControlPlane.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "status to see serve stopped", func() bool { return !f.status().ControlPlane.Running })
	if r := f.must(0, "status"); !strings.Contains(r.out, "Control plane: not running") {
		t.Fatalf("status without serve\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(f.dir, ".flowctl", "token-secret")); err != nil {
		t.Fatalf("no token secret: %v", err)
	}

	// A component killed outside flowctl (no serve, so nothing restarts
	// it): a failure, not a stop.
	victim := childOf(f.records()["sink.out"].Handle)
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "status to see sink.out failed", func() bool {
		return f.status().states()["sink.out"] == "failed"
	})
}
