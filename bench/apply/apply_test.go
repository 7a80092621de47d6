// Package apply benchmarks `flowctl apply` end to end: a pipeline of 100
// process components in ten levels of ten, each component reading every
// component of the level before and becoming ready 200 ms after it starts.
// The critical path is ten readiness delays, 2 s; everything above that is
// flowctl's own cost (starting shims, recording state, noticing readiness).
//
//	go test -run '^$' -bench . -benchtime 3x ./bench/apply/
package apply

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil"
)

const (
	levels     = 10
	width      = 10
	startDelay = 200 * time.Millisecond
)

func BenchmarkApply(b *testing.B) {
	bins := testutil.BuildBinaries(b, testutil.WithFlowctl())
	for _, deps := range []string{"all", "two"} {
		for _, par := range []int{10, 20, 100} {
			b.Run(fmt.Sprintf("deps=%s/parallelism=%d", deps, par), func(b *testing.B) {
				dir := b.TempDir()
				name := fmt.Sprintf("bench-apply-%s-%d-%d", deps, par, os.Getpid())
				if err := os.WriteFile(filepath.Join(dir, "pipeline.hcl"), []byte(pipeline(name, bins.TestComponent, deps)), 0o644); err != nil {
					b.Fatal(err)
				}
				flowctl := func(args ...string) time.Duration {
					cmd := exec.Command(bins.Flowctl, args...)
					cmd.Dir = dir
					var out bytes.Buffer
					cmd.Stdout, cmd.Stderr = &out, &out
					start := time.Now()
					if err := cmd.Run(); err != nil {
						b.Fatalf("flowctl %v: %v\n%s", args, err, out.String())
					}
					return time.Since(start)
				}
				b.Cleanup(func() { flowctl("destroy", "-auto-approve") })
				var total time.Duration
				for b.Loop() {
					total += flowctl("apply", "-auto-approve", "-parallelism", fmt.Sprint(par))
					b.StopTimer()
					flowctl("destroy", "-auto-approve", "-parallelism", "100")
					b.StartTimer()
				}
				critical := levels * startDelay
				mean := total / time.Duration(b.N)
				b.ReportMetric(mean.Seconds(), "s/apply")
				b.ReportMetric(mean.Seconds()/critical.Seconds(), "x-critical-path")
			})
		}
	}
}

// pipeline is levels x width components; with deps "all" each reads every
// component of the level before, with "two" two of them.
func pipeline(name, component, deps string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "pipeline %q {\n  executor = \"process\"\n}\n", name)
	for l := range levels {
		for i := range width {
			kind := "processor"
			if l == 0 {
				kind = "source"
			}
			fmt.Fprintf(&s, "\n%s \"l%d-c%d\" {\n  command = [%q]\n  env     = { TC_START_DELAY = %q }\n", kind, l, i, component, startDelay.String())
			s.WriteString("  health {\n    http = \"/health\"\n  }\n")
			if l > 0 {
				var in []string
				for j := range width {
					if deps == "all" || j == i || j == (i+1)%width {
						prev := "processor"
						if l == 1 {
							prev = "source"
						}
						in = append(in, fmt.Sprintf("%s.l%d-c%d", prev, l-1, j))
					}
				}
				fmt.Fprintf(&s, "  inputs  = [%s]\n", strings.Join(in, ", "))
			}
			s.WriteString("}\n")
		}
	}
	return s.String()
}
