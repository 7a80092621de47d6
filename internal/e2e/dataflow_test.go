package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil"
)

// sinkLines reads the file sink's NDJSON: each event's id, in file order.
func sinkLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			ID      string         `json:"id"`
			Payload map[string]any `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue // a line being written
		}
		if ev.Payload["stage"] != "transformed" {
			t.Fatalf("an event skipped the processor: %s", sc.Text())
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// assertOncePerSource checks that ids holds src-1..src-n once each, in order.
func assertOncePerSource(t *testing.T, ids []string, src string, n int) {
	t.Helper()
	next := 1
	for _, id := range ids {
		s, ok := strings.CutPrefix(id, src+"-")
		if !ok {
			continue
		}
		seq, _ := strconv.Atoi(s)
		if seq != next {
			t.Fatalf("%s: event %d where %d was due (duplicated, lost or out of order)", src, seq, next)
		}
		next++
	}
	if next-1 != n {
		t.Fatalf("%s: %d events, want %d", src, next-1, n)
	}
}

func dataflowPipeline(f *fixture, ex map[string]string, count int, out string) string {
	return fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "counter" {
  command  = [%q]
  register = true
  env = {
    COUNTER_RATE  = "0"
    COUNTER_COUNT = "%d"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
    backoff {
      initial = "100ms"
    }
  }
}

processor "transform" {
  command  = [%q]
  inputs   = [source.counter]
  register = true
  env = {
    TRANSFORM_SET = "stage=transformed"
  }
  health {
    http = "/health"
  }
  restart {
    policy = "always"
    backoff {
      initial = "100ms"
    }
  }
}

sink "file" {
  command  = [%q]
  inputs   = [processor.transform]
  register = true
  env = {
    FILE_SINK_PATH = %q
  }
  health {
    http = "/health"
  }
}
`, f.name, ex["counter-source"], count, ex["transform-processor"], ex["file-sink"], out)
}

func TestEventsFlowFromSourceThroughProcessorToSinkAndSurviveAProcessorKill(t *testing.T) {
	f := newFixture(t)
	ex := testutil.BuildBinaries(t, testutil.WithExamples()).Examples
	const n = 10_000
	out := f.path("out/events.ndjson")
	f.write("pipeline.hcl", dataflowPipeline(f, ex, n, out))
	f.apply()

	// Kill the processor mid-stream: the watcher restarts it, the relay
	// resumes from the last acknowledged position.
	waitFor(t, 60*time.Second, "the first events at the sink", func() bool { return len(sinkLines(t, out)) > 500 })
	before := f.records()["processor.transform"]
	if err := syscall.Kill(childOf(before.Handle).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, "every event at the sink", func() bool { return len(sinkLines(t, out)) >= n })
	time.Sleep(500 * time.Millisecond) // anything doubled would show now
	ids := sinkLines(t, out)
	assertOncePerSource(t, ids, "counter", n)
	if r := f.records()["processor.transform"]; r.InstanceID == before.InstanceID || r.RestartCount != 1 {
		t.Fatalf("the processor was not restarted by the watcher: %+v", r)
	}
	// status shows the flows.
	st := f.must(0, "status").out
	if !strings.Contains(st, "source.counter") || !strings.Contains(st, "Data flows") {
		t.Fatalf("status lacks the data flows:\n%s", st)
	}
	f.must(0, "destroy", "-auto-approve")
	f.assertNoProcesses()
}
