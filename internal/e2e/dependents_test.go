package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

func TestWatcherRestartsDependentsWhenAsked(t *testing.T) {
	f := newFixture(t)
	f.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "up" {
  command = [%q]
  health {
    http = "/health"
  }
  restart {
    policy             = "always"
    restart_dependents = true
    backoff {
      initial = "100ms"
    }
  }
}

processor "mid" {
  command = [%q]
  inputs  = [source.up]
}

sink "down" {
  command = [%q]
  inputs  = [processor.mid]
}

sink "aside" {
  command = [%q]
  inputs  = [source.other]
}

source "other" {
  command = [%q]
}
`, f.name, f.tc, f.tc, f.tc, f.tc, f.tc))
	f.apply()
	before := f.records()
	if err := syscall.Kill(childOf(before["source.up"].Handle).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "source.up and its dependents restarted", func() bool {
		now := f.records()
		for _, a := range []string{"source.up", "processor.mid", "sink.down"} {
			if now[a].InstanceID == before[a].InstanceID || now[a].Status != state.StatusRunning {
				return false
			}
		}
		return true
	})
	if f.records()["sink.aside"].InstanceID != before["sink.aside"].InstanceID {
		t.Fatal("sink.aside, not downstream, was restarted")
	}
	var order []string
	for _, ev := range f.history() {
		if ev.Operation == "restart" && ev.Action == "restart" {
			order = append(order, ev.Address+": "+ev.Reason)
		}
	}
	want := []string{"source.up: killed by SIGKILL", "processor.mid: upstream source.up restarted", "sink.down: upstream source.up restarted"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("restarts %q, want %q", order, want)
	}
	f.assertConverged([]string{"processor.mid", "sink.aside", "sink.down", "source.other", "source.up"})
}
