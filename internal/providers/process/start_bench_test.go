//go:build linux

package process

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// BenchmarkStartManyVersusDirect starts 200 `sleep` components through the
// provider, 20 at a time, and the same 200 commands with os/exec alone,
// alternating, and reports both and their ratio: what the shim (its start,
// its log and run record, the status it reports) adds to a start.
func BenchmarkStartManyVersusDirect(b *testing.B) {
	const n, par = 200, 20
	shimBin := filepath.Join(b.TempDir(), LeanShimName)
	if out, err := exec.Command("go", "build", "-o", shimBin, "github.com/flowctl/flowctl/cmd/flowctl-shim").CombinedOutput(); err != nil {
		b.Fatalf("build the shim: %v\n%s", err, out)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		b.Skip("no sleep command")
	}
	ctx := context.Background()
	inParallel := func(f func(i int)) time.Duration {
		t0 := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, par)
		for i := 0; i < n; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() { defer wg.Done(); f(i); <-sem }()
		}
		wg.Wait()
		return time.Since(t0)
	}
	var viaShim, direct time.Duration
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		p := New(Options{Dir: dir, ShimCommand: []string{shimBin}})
		handles := make([]providers.Handle, n)
		viaShim += inParallel(func(j int) {
			c := &config.Component{Kind: config.KindSource, ID: fmt.Sprintf("s%d", j), Executor: Name, Command: []string{sleep, "1000000"}}
			h, err := p.Start(ctx, providers.ComponentSpec{Pipeline: "bench-many", Lineage: "l", InstanceID: "i", SpecHash: "h", Component: c, WorkDir: dir,
				Env: map[string]string{contract.EnvPipeline: "bench-many"}})
			if err != nil {
				b.Error(err)
				return
			}
			handles[j] = h
		})
		for _, h := range handles {
			if h != nil {
				_ = p.Stop(ctx, h, 0)
			}
		}
		cmds := make([]*exec.Cmd, n)
		direct += inParallel(func(j int) {
			c := exec.Command(sleep, "1000000")
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := c.Start(); err != nil {
				b.Error(err)
				return
			}
			cmds[j] = c
		})
		for _, c := range cmds {
			if c != nil {
				_ = c.Process.Signal(syscall.SIGTERM)
				_ = c.Wait()
			}
		}
	}
	b.ReportMetric(float64(viaShim.Microseconds())/float64(b.N*n)/1000, "shim-ms/start")
	b.ReportMetric(float64(direct.Microseconds())/float64(b.N*n)/1000, "direct-ms/start")
	b.ReportMetric(float64(viaShim)/float64(direct), "ratio")
}
