package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// #19 item 4: a component whose every restart exits before it is ready
// reaches crashloop at max_retries, with one history row per attempt,
// each a new instance.
func TestCrashloopWhenEveryRestartExitsBeforeItIsReady(t *testing.T) {
	f := newFixture(t)
	const addr = "source.early"
	f.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "early" {
  command = [%q]
  env = {
    TC_START_DELAY = "2s"
    TC_EXIT_AFTER  = "100ms"
    TC_EXIT_CODE   = "3"
  }
  health {
    http = "/health"
  }
  restart {
    policy      = "on-failure"
    max_retries = 3
    backoff {
      initial    = "200ms"
      multiplier = 2
    }
  }
}
`, f.name, f.tc))
	if r := f.run("apply", "-auto-approve"); r.code != 1 {
		t.Fatalf("the first start should fail:\n%s", r)
	}
	waitFor(t, 90*time.Second, "crashloop", func() bool {
		r := f.records()[addr]
		return r != nil && r.Status == state.StatusCrashloop
	})
	evs := f.restarts(addr)
	if len(evs) != 3 {
		t.Fatalf("want 3 restart rows, one per attempt; got %d: %+v", len(evs), evs)
	}
	for i, ev := range evs {
		if ev.Attempt != i+1 || ev.Result != "failed" {
			t.Fatalf("restart row %d: %+v", i+1, ev)
		}
	}
	if !strings.HasPrefix(evs[1].Reason, "start failed: ") {
		t.Fatalf("the second attempt's reason %q: it follows a failed start", evs[1].Reason)
	}
	var loops int
	for _, ev := range f.history() {
		if ev.Operation == "restart" && ev.Address == addr && ev.Action == "crashloop" {
			loops++
		}
	}
	rec := f.records()[addr]
	if loops != 1 || rec.RestartCount != 3 || !strings.Contains(rec.StatusReason, "after 3 restarts") {
		t.Fatalf("crashloop rows %d, record %+v", loops, rec)
	}
	if st := f.status().states()[addr]; st != "crashloop" {
		t.Fatalf("status %q", st)
	}
	// Nothing more is started.
	n := len(f.restarts(addr))
	if s, ok := f.watchState(addr); !ok || s.Instance != rec.InstanceID {
		t.Fatalf("the watcher does not follow the last instance: %+v vs %s", s, rec.InstanceID)
	}
	if len(f.restarts(addr)) != n {
		t.Fatal("restarted after crashloop")
	}
}
