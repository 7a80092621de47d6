// Package apply benchmarks `flowctl apply` end to end: a pipeline of 100
// process components in ten levels of ten, each component reading every
// component of the level before and becoming ready 200 ms after it starts.
// The critical path is ten readiness delays, 2 s. Above that come the
// components' own start-up cost on this machine and flowctl's (starting
// shims, recording state, noticing readiness): each iteration therefore
// also runs the same components directly, without flowctl (directOnce),
// and the benchmark reports both figures and their ratio (x-direct), taken
// in the same run so that the machine's load weighs on both alike.
//
//	go test -run '^$' -bench . -benchtime 3x ./bench/apply/
package apply

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
				flowctl := func(args ...string) time.Duration { return testutil.Timed(b, dir, nil, bins.Flowctl, args...) }
				b.Cleanup(func() { flowctl("destroy", "-auto-approve") })
				var total, direct time.Duration
				for b.Loop() {
					total += flowctl("apply", "-auto-approve", "-parallelism", fmt.Sprint(par))
					b.StopTimer()
					flowctl("destroy", "-auto-approve", "-parallelism", "100")
					direct += directOnce(b, bins.TestComponent)
					b.StartTimer()
				}
				critical := levels * startDelay
				mean := total / time.Duration(b.N)
				b.ReportMetric(mean.Seconds(), "s/apply")
				b.ReportMetric(mean.Seconds()/critical.Seconds(), "x-critical-path")
				b.ReportMetric(direct.Seconds()/float64(b.N), "s/direct")
				b.ReportMetric(total.Seconds()/direct.Seconds(), "x-direct")
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

// directOnce is the floor flowctl is measured against: the same components
// in the same order (a level starts when the whole level before is ready),
// started directly with os/exec by this process and polled for health every
// 5 ms, with no shim, no state and no plan. What it takes above the critical
// path is the cost of the components themselves on this machine.
func directOnce(b *testing.B, component string) time.Duration {
	client := &http.Client{Timeout: time.Second}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	start := time.Now()
	for range levels {
		var wg sync.WaitGroup
		for range width {
			port, err := freePort()
			if err != nil {
				b.Fatal(err)
			}
			cmd := exec.Command(component)
			cmd.Env = []string{"HEALTH_PORT=" + strconv.Itoa(port), "TC_START_DELAY=" + startDelay.String()}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			procs = append(procs, cmd)
			wg.Add(1)
			go func() {
				defer wg.Done()
				url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
				for {
					if resp, err := client.Get(url); err == nil {
						_ = resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							return
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
	}
	return time.Since(start)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
