//go:build linux

package process

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

// imageFixture is a provider with an image cache of its own, and a
// registry holding the test component as /app/stellar-live-source.
func imageFixture(t *testing.T) (*fixture, *registrytest.Registry, *images.Store) {
	t.Helper()
	store := images.New(t.TempDir())
	f := setup(t, func(o *Options) { o.Images = store })
	return f, registrytest.Start(t), store
}

func TestStartRunsTheBinaryOfARegistryImage(t *testing.T) {
	f, reg, _ := imageFixture(t)
	bin, err := os.ReadFile(f.bin)
	if err != nil {
		t.Fatal(err)
	}
	img := registrytest.Image(t, v1.Config{Env: []string{"TC_PRINT=from the image", "TC_PRINT_INTERVAL=50ms"}, WorkingDir: "/work"},
		registrytest.Layer(t,
			registrytest.File{Path: "app/stellar-live-source", Mode: 0o755, Data: bin},
			registrytest.File{Path: "work/", Type: tar.TypeDir, Mode: 0o755}))
	ref, digest := reg.Push(t, "withobsrvr/stellar-live-source", "v1.0.0", img)

	s := f.spec("ledger", nil)
	s.Component = &config.Component{Kind: config.KindSource, ID: "ledger", Executor: "process", Type: "stellar-live-source@v1.0.0", Image: ref}
	ctx := context.Background()
	if err := f.p.ResolveImages(ctx, f.dir, []*config.Component{s.Component}); err != nil {
		t.Fatal(err)
	}
	if s.Component.ImageDigest != digest {
		t.Fatalf("resolved %q, want %s", s.Component.ImageDigest, digest)
	}
	if err := f.p.Preflight(ctx, []*config.Component{s.Component}); err != nil {
		t.Fatal(err)
	}
	h := f.start(s)
	f.waitReady(s, h)
	rec, err := readRecord(f.p.RunRecordPath(s.Address()))
	if err != nil || rec == nil {
		t.Fatalf("run record: %v", err)
	}
	if !strings.HasSuffix(rec.Command, filepath.Join("rootfs", "app", "stellar-live-source")) || !strings.HasSuffix(rec.WorkDir, filepath.Join("rootfs", "work")) {
		t.Fatalf("ran %s in %s, want the image's /app/stellar-live-source in /work", rec.Command, rec.WorkDir)
	}
	f.stop(h, 0)
	log, _ := os.ReadFile(f.p.LogPath(s.Address()))
	if !strings.Contains(string(log), "from the image") {
		t.Fatalf("the image's Env did not reach the component; log:\n%s", log)
	}
}

func TestPreflightRefusesAnImageWithoutItsBinaryAndStartsNothing(t *testing.T) {
	f, reg, _ := imageFixture(t)
	img := registrytest.Image(t, v1.Config{}, registrytest.Layer(t, registrytest.File{Path: "etc/motd", Data: []byte("hi")}))
	ref, _ := reg.Push(t, "team/hollow", "1", img)
	c := &config.Component{Kind: config.KindSource, ID: "hollow", Executor: "process", Image: ref}
	ctx := context.Background()
	if err := f.p.ResolveImages(ctx, f.dir, []*config.Component{c}); err != nil {
		t.Fatal(err)
	}
	err := f.p.Preflight(ctx, []*config.Component{c})
	if err == nil || !strings.Contains(err.Error(), "source.hollow") || !strings.Contains(err.Error(), "/app/hollow") || !strings.Contains(err.Error(), "entrypoint") {
		t.Fatalf("want the paths tried and the entrypoint named, got %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.dir, "run")); len(entries) != 0 {
		t.Fatalf("something was started: %v", entries)
	}
}

func TestResolveImagesRefusesUnsignedImageWhenPolicyRequiresOne(t *testing.T) {
	f, reg, _ := imageFixture(t)
	key := registrytest.NewKey(t)
	keyPath := key.WritePublic(t, f.dir, "cosign.pub")
	img := registrytest.Image(t, v1.Config{}, registrytest.Layer(t, registrytest.File{Path: "app/x", Mode: 0o755, Data: []byte("x")}))
	ref, digest := reg.Push(t, "team/x", "1", img)
	pol := &config.ImagePolicy{RequireSignature: true, PublicKey: filepath.Base(keyPath)}
	c := &config.Component{Kind: config.KindSource, ID: "x", Executor: "process", Image: ref, ImagePolicy: pol}
	ctx := context.Background()
	err := f.p.ResolveImages(ctx, f.dir, []*config.Component{c})
	if err == nil || !strings.Contains(err.Error(), "unsigned") || !strings.Contains(err.Error(), "source.x") {
		t.Fatalf("want an unsigned image refused, got %v", err)
	}
	reg.Sign(t, key, reg.Host+"/team/x", digest)
	if err := f.p.ResolveImages(ctx, f.dir, []*config.Component{c}); err != nil {
		t.Fatalf("signed now, still refused: %v", err)
	}
	if pub, _ := images.ParsePublicKey(key.PublicPEM); c.ImageSignedBy != pub.Fingerprint || c.ImageDigest != digest {
		t.Fatalf("signed by %q digest %q", c.ImageSignedBy, c.ImageDigest)
	}
}
