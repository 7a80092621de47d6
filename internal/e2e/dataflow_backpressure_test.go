package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/status"
	"github.com/flowctl/flowctl/internal/testutil"
)

// slowSinkPipeline: a counter source of events of about 600 bytes, as fast
// as it is let, up to count ("0": no end), through the processor into a
// file sink that waits delay before each event.
func slowSinkPipeline(f *fixture, ex map[string]string, out, count, delay string) string {
	return fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "counter" {
  command  = [%q]
  register = true
  env = {
    COUNTER_RATE      = "0"
    COUNTER_COUNT     = %q
    COUNTER_PAD_BYTES = "512"
  }
  health {
    http = "/health"
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
}

sink "file" {
  command  = [%q]
  inputs   = [processor.transform]
  register = true
  env = {
    FILE_SINK_PATH  = %q
    FILE_SINK_DELAY = %q
  }
  health {
    http = "/health"
  }
}
`, f.name, ex["counter-source"], count, ex["transform-processor"], ex["file-sink"], out, delay)
}

// memoryKiB reads VmRSS and VmHWM (peak) of a process, in KiB.
func memoryKiB(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read the status of process %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	return rss, hwm
}

// lineCount counts the complete lines of a file (0 when it is missing),
// without decoding them.
func lineCount(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

// edgeEvents reads the relay's edge counters from `flowctl status -o json`
// (serve saves them every 2s), by "FROM->TO".
func (f *fixture) edgeEvents() map[string]uint64 {
	f.t.Helper()
	r := f.must(0, "status", "-o", "json")
	var st struct {
		DataFlows []status.DataFlow `json:"data_flows"`
	}
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		f.t.Fatalf("decode status -o json: %v\n%s", err, r)
	}
	out := map[string]uint64{}
	for _, e := range st.DataFlows {
		out[e.From+"->"+e.To] = e.Events
	}
	return out
}

func TestASlowSinkHoldsBackAnUnboundedSourceWithBoundedServeMemoryAndLosesNothing(t *testing.T) {
	f := newFixture(t)
	ex := testutil.BuildBinaries(t, testutil.WithExamples()).Examples
	out := f.path("out/events.ndjson")
	f.write("pipeline.hcl", slowSinkPipeline(f, ex, out, "0", "1ms"))
	f.apply()
	waitFor(t, 60*time.Second, "the first events at the sink", func() bool { return lineCount(out) > 0 })
	serve := f.serveRecord()
	if serve == nil || !serve.Alive() {
		t.Fatal("no control plane running")
	}

	// The sink takes at most ~1,000 events/s; the source, with no end,
	// would emit tens of thousands. What the relay took from the source
	// and has not yet delivered to the sink stays within its queues and
	// the flow-control windows, and so does serve's memory.
	const fromSource, toSink = "source.counter->processor.transform", "processor.transform->sink.file"
	var ahead uint64
	for i := range 10 {
		time.Sleep(time.Second)
		rss, hwm := memoryKiB(t, serve.Process.PID)
		e := f.edgeEvents()
		if e[fromSource] > e[toSink] {
			ahead = max(ahead, e[fromSource]-e[toSink])
		}
		t.Logf("after %2ds: serve VmRSS %6.1f MiB, VmHWM %6.1f MiB; relay: %d events from the source, %d to the sink",
			i+1, float64(rss)/1024, float64(hwm)/1024, e[fromSource], e[toSink])
	}
	if _, hwm := memoryKiB(t, serve.Process.PID); hwm > 200<<10 {
		t.Errorf("serve's peak resident memory is %.1f MiB behind a slow sink, want it bounded (< 200 MiB)", float64(hwm)/1024)
	}
	if ahead > 20_000 {
		t.Fatalf("the relay took %d events from the source ahead of the sink: nothing holds the source back", ahead)
	}

	// Then the sink is made fast and the source given an end beyond
	// anything it can have emitted so far (both replaced: their env
	// changed; the source resumes from its saved position): every event
	// arrives, once, in order — those that waited behind the slow sink and
	// those replayed after the replacements alike.
	last := f.edgeEvents()[fromSource] + 40_000
	f.write("pipeline.hcl", slowSinkPipeline(f, ex, out, strconv.FormatUint(last, 10), "0s"))
	f.apply()
	waitFor(t, 180*time.Second, fmt.Sprintf("%d events at the sink", last), func() bool { return uint64(lineCount(out)) >= last })
	time.Sleep(500 * time.Millisecond) // anything doubled would show now
	assertOncePerSource(t, sinkLines(t, out), "counter", int(last))
	f.must(0, "destroy", "-auto-approve")
	f.assertNoProcesses()
}
