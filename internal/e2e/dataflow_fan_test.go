package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil"
)

// fanPipeline: source a fans out to processors p1 and p2, which feed sinks
// one and two; source b goes through p3 into sink two as well, which so
// merges two sources.
//
//	a ─┬─ p1 ── one
//	   └─ p2 ─┐
//	b ── p3 ──┴─ two
func fanPipeline(f *fixture, ex map[string]string, count int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %q {\n  executor = \"process\"\n}\n", f.name)
	for _, id := range []string{"a", "b"} {
		fmt.Fprintf(&b, `
source %q {
  command  = [%q]
  register = true
  env = {
    COUNTER_RATE  = "0"
    COUNTER_COUNT = "%d"
  }
  health {
    http = "/health"
  }
}
`, id, ex["counter-source"], count)
	}
	for _, p := range []struct{ id, input string }{{"p1", "source.a"}, {"p2", "source.a"}, {"p3", "source.b"}} {
		fmt.Fprintf(&b, `
processor %q {
  command  = [%q]
  inputs   = [%s]
  register = true
  env = {
    TRANSFORM_SET = "stage=transformed"
  }
  health {
    http = "/health"
  }
}
`, p.id, ex["transform-processor"], p.input)
	}
	for _, k := range []struct{ id, inputs string }{{"one", "processor.p1"}, {"two", "processor.p2, processor.p3"}} {
		fmt.Fprintf(&b, `
sink %q {
  command  = [%q]
  inputs   = [%s]
  register = true
  env = {
    FILE_SINK_PATH = %q
  }
  health {
    http = "/health"
  }
}
`, k.id, ex["file-sink"], k.inputs, f.path("out/"+k.id+".ndjson"))
	}
	return b.String()
}

// TestFanOutAndFanInDeliverEveryEventOncePerPath: serve's relay, wired from
// state and registrations, copies each event of a source to every path
// below it and merges two sources into one sink, as real processes.
func TestFanOutAndFanInDeliverEveryEventOncePerPath(t *testing.T) {
	f := newFixture(t)
	ex := testutil.BuildBinaries(t, testutil.WithExamples()).Examples
	const n = 5_000
	f.write("pipeline.hcl", fanPipeline(f, ex, n))
	f.apply()
	one, two := f.path("out/one.ndjson"), f.path("out/two.ndjson")
	waitFor(t, 120*time.Second, "every event at both sinks", func() bool {
		return lineCount(one) >= n && lineCount(two) >= 2*n
	})
	time.Sleep(500 * time.Millisecond) // anything doubled would show now
	ids := sinkLines(t, one)
	assertOncePerSource(t, ids, "a", n)
	if len(ids) != n {
		t.Fatalf("sink one holds %d events, want the %d of source a", len(ids), n)
	}
	ids = sinkLines(t, two)
	assertOncePerSource(t, ids, "a", n)
	assertOncePerSource(t, ids, "b", n)
	if len(ids) != 2*n {
		t.Fatalf("sink two holds %d events, want %d of each source", len(ids), n)
	}
	// Each edge counted its events (serve saves the counters every 2s).
	waitFor(t, 30*time.Second, "the edge counters", func() bool {
		edges := f.edgeEvents()
		for _, e := range []string{"source.a->processor.p1", "source.a->processor.p2", "source.b->processor.p3",
			"processor.p1->sink.one", "processor.p2->sink.two", "processor.p3->sink.two"} {
			if edges[e] < n {
				return false
			}
		}
		return true
	})
	f.must(0, "destroy", "-auto-approve")
	f.assertNoProcesses()
}
