package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

// TestSignedImageFromALoopbackRegistryIsVerifiedPulledAndRun pulls the
// test component's image through the engine from a real registry, checks
// its signature at plan time, and refuses the unsigned and the wrongly
// signed before anything starts.
func TestSignedImageFromALoopbackRegistryIsVerifiedPulledAndRun(t *testing.T) {
	t.Setenv(images.EnvCacheDir, t.TempDir())
	cli := dockertest.Engine(t)
	reg := registrytest.Start(t)
	bin, err := os.ReadFile(testutil.BuildBinaries(t).TestComponent)
	if err != nil {
		t.Fatal(err)
	}
	img := registrytest.Image(t, v1.Config{Entrypoint: []string{"/app/testcomponent"}, Env: []string{"TC_PRINT=signed image", "TC_PRINT_INTERVAL=100ms"}},
		registrytest.Layer(t, registrytest.File{Path: "app/testcomponent", Mode: 0o755, Data: bin}))
	pipeline := dockertest.PipelineName(t, "dks-")
	ref, digest := reg.Push(t, "team/"+pipeline, "v1", img)
	repo := reg.Host + "/team/" + pipeline
	t.Cleanup(func() { _, _ = cli.ImageRemove(ctx(t), ref, image.RemoveOptions{Force: true}) })

	dir := t.TempDir()
	key := registrytest.NewKey(t)
	key.WritePublic(t, dir, "cosign.pub")
	p := New(Options{})
	t.Cleanup(func() {
		_ = p.Close()
		dockertest.RemovePipeline(cli, pipeline)
	})
	comp := func() *config.Component {
		return &config.Component{Kind: config.KindSource, ID: "signed", Executor: Name, Image: ref, StopTimeout: config.Duration(time.Second),
			ImagePolicy: &config.ImagePolicy{RequireSignature: true, PublicKey: "cosign.pub"}}
	}

	c := comp()
	err = p.ResolveImages(ctx(t), dir, []*config.Component{c})
	if err == nil || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("an unsigned image: want refused, got %v", err)
	}
	if got := dockertest.Containers(t, cli, pipeline); len(got) != 0 {
		t.Fatalf("a refused image started containers: %v", got)
	}

	reg.Sign(t, registrytest.NewKey(t), repo, digest)
	if err := p.ResolveImages(ctx(t), dir, []*config.Component{comp()}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("signed by another key: want refused, got %v", err)
	}

	reg.Sign(t, key, repo, digest)
	c = comp()
	if err := p.ResolveImages(ctx(t), dir, []*config.Component{c}); err != nil {
		t.Fatalf("signed by the key: %v", err)
	}
	if pub, _ := images.LoadPublicKey(filepath.Join(dir, "cosign.pub")); c.ImageDigest != digest || c.ImageSignedBy != pub.Fingerprint {
		t.Fatalf("pinned %q signed by %q", c.ImageDigest, c.ImageSignedBy)
	}
	if err := p.Preflight(ctx(t), []*config.Component{c}); err != nil {
		t.Fatal(err)
	}
	spec := providers.ComponentSpec{Pipeline: pipeline, Lineage: "l", InstanceID: "i", SpecHash: c.SpecHash(nil), Component: c,
		Env: map[string]string{"FLOWCTL_COMPONENT_ID": "signed"}, WorkDir: dir}
	h, err := p.Start(ctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, p: p, cli: cli, pipeline: pipeline}
	r.waitLog(h, "signed image")
	r.stop(h, 0)

	// The tag moves to an image the plan did not verify: the pinned
	// component refuses to start rather than run it.
	other := registrytest.Image(t, v1.Config{Entrypoint: []string{"/app/testcomponent"}},
		registrytest.Layer(t, registrytest.File{Path: "app/testcomponent", Mode: 0o755, Data: append(bin, 0)}))
	reg.Push(t, "team/"+pipeline, "v1", other)
	moved := *c
	moved.Pull = config.PullAlways
	p2 := New(Options{}) // another run of flowctl: it pulls afresh
	t.Cleanup(func() { _ = p2.Close() })
	if _, err := p2.Start(ctx(t), providers.ComponentSpec{Pipeline: pipeline, Lineage: "l", InstanceID: "j", SpecHash: moved.SpecHash(nil), Component: &moved, WorkDir: dir}); err == nil || !strings.Contains(err.Error(), "plan again") {
		t.Fatalf("a moved tag: want the start refused, got %v", err)
	}
}
