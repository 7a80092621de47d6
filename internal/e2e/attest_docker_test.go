package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// ecoImage is the eco component in an image FROM scratch, tagged by its
// hash.
func ecoImage(t *testing.T, df *dockerFixture) string {
	t.Helper()
	bin, err := os.ReadFile(testutil.BuildBinaries(t, testutil.WithEcoComponent()).EcoComponent)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch\nCOPY eco /eco\nLABEL io.flowctl.test=eco\nENTRYPOINT [\"/eco\"]\n"
	sum := sha256.New()
	sum.Write(bin)
	sum.Write([]byte(dockerfile))
	tag := "flowctl-test/eco:" + hex.EncodeToString(sum.Sum(nil)[:8])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := df.cli.ImageInspect(ctx, tag); err == nil {
		return tag
	}
	if err := dockertest.BuildImage(ctx, df.cli, tag, dockerfile, map[string][]byte{"eco": bin}); err != nil {
		t.Fatalf("build %s: %v", tag, err)
	}
	return tag
}

// The same components in containers apply in one go under the default
// auth mode: each registration comes from the container's address on the
// pipeline's network and is attested as that container; a killed
// container's replacement is attested in turn.
func TestTokenlessComponentsApplyInOneGoAttestedByContainer(t *testing.T) {
	df := newDockerFixture(t)
	f := df.fixture
	img := ecoImage(t, df)
	f.write("pipeline.hcl", ecoPipeline(f.name, "docker", fmt.Sprintf("image = %q", img), 50052, 8088, ""))
	f.apply()

	recs := f.records()
	regs := f.registrations()
	for _, a := range ecoAddrs {
		rec := recs[a]
		if rec == nil || rec.Status != state.StatusRunning {
			t.Fatalf("%s: %+v", a, rec)
		}
		want := "attested:container " + containerOf(rec.Handle)[:12]
		if got := attestedAs(regs, a); got != want {
			t.Errorf("%s: proof %q, want %q (registrations %+v)", a, got, want, regs)
		}
	}
	if p := recs["sink.fixed"].Ports; p["PORT"] != 50052 || p["HEALTH_PORT"] != 8088 {
		t.Errorf("sink.fixed recorded ports %v", p)
	}

	old := containerOf(recs["processor.cur"].Handle)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := df.cli.ContainerKill(ctx, old, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "processor.cur's new container to be attested", func() bool {
		rec := f.records()["processor.cur"]
		id := containerOf(rec.Handle)
		if id == old || rec.Status != state.StatusRunning {
			return false
		}
		return attestedAs(f.registrations(), "processor.cur") == "attested:container "+id[:12]
	})
}
