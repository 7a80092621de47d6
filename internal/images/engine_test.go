package images_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// TestImageOnlyOnTheLocalEngineIsTakenFromIt: an image built here and
// never pushed (docker.io has no flowctl-test/tc) is found on the engine,
// pinned to its ID, and extracted from it.
func TestImageOnlyOnTheLocalEngineIsTakenFromIt(t *testing.T) {
	cli := dockertest.Engine(t)
	tag := dockertest.TestImage(t, cli, dockertest.ImageOptions{})
	ins, err := cli.ImageInspect(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	s := images.New(t.TempDir(), images.WithEngine(&images.DockerEngine{}))
	ctx := context.Background()
	r, err := s.Resolve(ctx, tag, images.PullNever)
	if err != nil {
		t.Fatal(err)
	}
	if r.From != "engine" || r.Digest != ins.ID {
		t.Fatalf("resolved %+v, want the engine's image %s", r, ins.ID)
	}
	// pull = missing takes it from the engine too, as docker run would,
	// without asking docker.io (which has no such image).
	if rm, err := s.Resolve(ctx, tag, images.PullMissing); err != nil || rm.From != "engine" || rm.Digest != ins.ID {
		t.Fatalf("pull = missing: %+v %v", rm, err)
	}
	e, err := s.Ensure(ctx, tag, r.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if e.Source != "engine" {
		t.Fatalf("source %q", e.Source)
	}
	cmd, err := images.CommandFor(e, "nothing-by-this-name", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Argv[0] != filepath.Join(e.Root, "tc") {
		t.Fatalf("argv %q, want the entrypoint /tc", cmd.Argv)
	}
}
