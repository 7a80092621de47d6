// Package images benchmarks the process executor's image path: a first
// pull and extraction of a ~20 MB single-layer image from a registry on
// loopback (docker-registry) against `docker pull` of the same image, and
// what a cached image adds to a component's start (see bench/README.md).
package images

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

// payloadSize makes the layer about 20 MB with the test component (random
// bytes: compression gains nothing, as with a real binary's worst case).
const payloadSize = 18 << 20

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkFirstPullVersusDockerPull alternates, per iteration, a first
// pull + extract with flowctl's image cache (an empty cache each time) and
// a `docker pull` of the same image (removed from the engine before), and
// reports both medians and their ratio.
func BenchmarkFirstPullVersusDockerPull(b *testing.B) {
	dockertest.Engine(b)
	reg := registrytest.Start(b)
	bin, err := os.ReadFile(testutil.BuildBinaries(b).TestComponent)
	if err != nil {
		b.Fatal(err)
	}
	blob := make([]byte, payloadSize)
	_, _ = rand.Read(blob)
	img := registrytest.Image(b, v1.Config{Entrypoint: []string{"/app/bench"}}, registrytest.Layer(b,
		registrytest.File{Path: "app/bench", Mode: 0o755, Data: bin},
		registrytest.File{Path: "app/data.bin", Data: blob}))
	ref, digest := reg.Push(b, "bench/pull-"+strconv.FormatInt(time.Now().UnixNano(), 36), "v1", img)
	b.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref).Run() })
	ctx := context.Background()

	var ours, theirs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		_ = exec.Command("docker", "rmi", "-f", ref).Run()
		b.StartTimer()

		t0 := time.Now()
		if _, err := images.New(dir).Ensure(ctx, ref, digest); err != nil {
			b.Fatal(err)
		}
		ours = append(ours, time.Since(t0))

		t1 := time.Now()
		if out, err := exec.Command("docker", "pull", "-q", ref).CombinedOutput(); err != nil {
			b.Fatalf("docker pull: %v: %s", err, out)
		}
		theirs = append(theirs, time.Since(t1))
	}
	b.StopTimer()
	mo, mt := median(ours), median(theirs)
	b.ReportMetric(float64(mo.Milliseconds()), "flowctl-ms")
	b.ReportMetric(float64(mt.Milliseconds()), "docker-pull-ms")
	b.ReportMetric(float64(mo)/float64(mt), "ratio")
}
