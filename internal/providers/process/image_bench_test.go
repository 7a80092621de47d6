//go:build linux

package process

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
	"github.com/flowctl/flowctl/pkg/contract"
)

// BenchmarkWarmStartImageVersusCommand alternates starting the test
// component as a plain command and from its image already in the cache,
// and reports the median Start of each and what the image adds.
func BenchmarkWarmStartImageVersusCommand(b *testing.B) {
	bins := testutil.BuildBinaries(b)
	reg := registrytest.Start(b)
	store := images.New(b.TempDir())
	dir := b.TempDir()
	opts := shimOptions(dir)
	opts.Images = store
	p := New(opts)
	ctx := context.Background()

	data := readFile(b, bins.TestComponent)
	ref, digest := reg.Push(b, "bench/warm", "v1", registrytest.Image(b, v1.Config{},
		registrytest.Layer(b, registrytest.File{Path: "app/warm", Mode: 0o755, Data: data})))
	if _, err := store.Ensure(ctx, ref, digest); err != nil {
		b.Fatal(err)
	}
	plain := &config.Component{Kind: config.KindSource, ID: "plain", Executor: Name, Command: []string{bins.TestComponent}}
	fromImage := &config.Component{Kind: config.KindSource, ID: "warm", Executor: Name, Image: ref, ImageDigest: digest}
	spec := func(c *config.Component) providers.ComponentSpec {
		return providers.ComponentSpec{Pipeline: "bench-warm", Lineage: "l", InstanceID: "i", SpecHash: "h", Component: c, WorkDir: dir,
			Env: map[string]string{contract.EnvPipeline: "bench-warm", contract.EnvComponentAddress: c.Address()}}
	}
	startStop := func(c *config.Component) time.Duration {
		t0 := time.Now()
		h, err := p.Start(ctx, spec(c))
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Stop(ctx, h, 0); err != nil {
			b.Fatal(err)
		}
		return d
	}
	var plainD, imageD []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plainD = append(plainD, startStop(plain))
		imageD = append(imageD, startStop(fromImage))
	}
	b.StopTimer()
	mp, mi := medianOf(plainD), medianOf(imageD)
	b.ReportMetric(float64(mp.Microseconds())/1000, "command-start-ms")
	b.ReportMetric(float64(mi.Microseconds())/1000, "image-start-ms")
	b.ReportMetric(float64((mi-mp).Microseconds())/1000, "added-ms")
}

func medianOf(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func readFile(b *testing.B, path string) []byte {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkImageSpecCached is the work Start adds for a cached image
// alone: reading the entry and finding the binary.
func BenchmarkImageSpecCached(b *testing.B) {
	reg := registrytest.Start(b)
	store := images.New(b.TempDir())
	p := New(Options{Dir: b.TempDir(), Images: store})
	ctx := context.Background()
	ref, digest := reg.Push(b, "bench/spec", "v1", registrytest.Image(b, v1.Config{},
		registrytest.Layer(b, registrytest.File{Path: "app/spec", Mode: 0o755, Data: []byte("x")})))
	if _, err := store.Ensure(ctx, ref, digest); err != nil {
		b.Fatal(err)
	}
	c := &config.Component{Kind: config.KindSource, ID: "spec", Executor: Name, Image: ref, ImageDigest: digest}
	s := providers.ComponentSpec{Component: c, Env: map[string]string{"A": "b"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.imageSpec(ctx, &s); err != nil {
			b.Fatal(err)
		}
	}
}
