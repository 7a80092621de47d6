package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// #19 item 6: `flowctl run` survives a failed first apply of some
// components: it keeps what started, says why the rest failed, lets the
// watcher retry them by their policy, and Ctrl-C still destroys.
func TestDayTwoRunKeepsWhatStartedWhenSomeComponentsFail(t *testing.T) {
	f := newFixture(t)
	f.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "good" {
  command = [%q]
  env = {
    TC_PRINT          = "tick {n}"
    TC_PRINT_INTERVAL = "200ms"
  }
  health {
    http = "/health"
  }
}

source "bad" {
  command = [%q]
  env = {
    TC_START_DELAY = "2s"
    TC_EXIT_AFTER  = "100ms"
    TC_EXIT_CODE   = "7"
  }
  health {
    http = "/health"
  }
  restart {
    policy      = "on-failure"
    max_retries = 2
    backoff {
      initial = "200ms"
    }
  }
}
`, f.name, f.tc, f.tc))
	var out lockedBuffer
	cmd := f.command(context.Background(), f.dir, "run")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	waitFor(t, 60*time.Second, "run to go on after the failed apply", func() bool {
		return strings.Contains(out.String(), "What started keeps running")
	})
	s := out.String()
	if !strings.Contains(s, "source.bad: Creation failed") || !strings.Contains(s, "exited with code 7") {
		t.Fatalf("run does not say why source.bad failed:\n%s", s)
	}
	good := f.records()["source.good"]
	if good == nil || good.Status != "running" || !procinfo.Alive(childOf(good.Handle)) {
		t.Fatalf("source.good after the failed apply: %+v\n%s", good, s)
	}
	waitFor(t, 60*time.Second, "the watcher to retry source.bad up to crashloop", func() bool {
		r := f.records()["source.bad"]
		return r != nil && r.Status == "crashloop" && strings.Contains(out.String(), "source.good | tick")
	})
	if n := len(f.restarts("source.bad")); n != 2 {
		t.Fatalf("source.bad restarted %d times; max_retries is 2", n)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not end after Ctrl-C\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Destroy complete!") {
		t.Fatalf("no destroy after Ctrl-C:\n%s", out.String())
	}
	if recs := f.records(); len(recs) != 0 {
		t.Fatalf("state still records %v", recs)
	}
	f.assertNoProcesses()
}
