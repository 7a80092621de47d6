// Package backend benchmarks flowctl's commands on each state backend: a
// quickstart-sized pipeline (a source, a processor and a sink of the test
// component, run by the process executor) applied once, then `flowctl plan`
// and `flowctl apply -auto-approve` (nothing to do) run again and again on
// the file backend and on a real PostgreSQL server on loopback, in the same
// run, so that the machine's load weighs on both alike. It reports the
// median wall time of each command; the pg backend's overhead is the
// difference.
//
//	go test -run '^$' -bench . -benchtime 20x ./bench/backend/
package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/pgtest"
)

func BenchmarkCommands(b *testing.B) {
	bins := testutil.BuildBinaries(b, testutil.WithFlowctl())
	srv := pgtest.StartWith(b, pgtest.Options{Durable: true}) // fsync on, as the file has it
	for _, backend := range []string{"file", "pg"} {
		dir := b.TempDir()
		name := fmt.Sprintf("bench-backend-%s-%d", backend, os.Getpid())
		if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(pipeline(name, bins.TestComponent, backend)), 0o644); err != nil {
			b.Fatal(err)
		}
		env := append(os.Environ(), "PG_CONN_STR="+srv.ConnStr)
		flowctl := func(args ...string) time.Duration { return testutil.Timed(b, dir, env, bins.Flowctl, args...) }
		flowctl("apply", "-auto-approve")
		b.Cleanup(func() { flowctl("destroy", "-auto-approve") })
		for _, args := range [][]string{{"plan"}, {"apply", "-auto-approve"}} {
			b.Run(backend+"/"+args[0], func(b *testing.B) {
				var times []time.Duration
				for b.Loop() {
					times = append(times, flowctl(args...))
				}
				slices.Sort(times)
				b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-median")
			})
		}
	}
}

func pipeline(name, component, backend string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "pipeline %q {\n  executor = \"process\"\n", name)
	if backend == "pg" {
		s.WriteString("  backend \"pg\" {\n    schema_name = \"bench\"\n  }\n")
	}
	s.WriteString("}\n")
	prev := ""
	for _, c := range []string{"source.ledger", "processor.filter", "sink.store"} {
		kind, id, _ := strings.Cut(c, ".")
		fmt.Fprintf(&s, "\n%s %q {\n  command = [%q]\n", kind, id, component)
		if prev != "" {
			fmt.Fprintf(&s, "  inputs  = [%s]\n", prev)
		}
		s.WriteString("  health {\n    http = \"/health\"\n  }\n}\n")
		prev = c
	}
	return s.String()
}
