package images_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

func componentBytes(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(testutil.BuildBinaries(t).TestComponent)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPullExtractsAppLayoutAndFindsBinaryByType(t *testing.T) {
	reg := registrytest.Start(t)
	bin := componentBytes(t)
	img := registrytest.Image(t, v1.Config{Env: []string{"PATH=/usr/bin:/bin", "IMAGE_VAR=from-image"}, WorkingDir: "/data"},
		registrytest.Layer(t,
			registrytest.File{Path: "app/", Type: tar.TypeDir, Mode: 0o755},
			registrytest.File{Path: "app/stellar-live-source", Mode: 0o755, Data: bin},
			registrytest.File{Path: "data/", Type: tar.TypeDir, Mode: 0o755},
		))
	ref, digest := reg.Push(t, "withobsrvr/stellar-live-source", "v1.0.0", img)
	ctx := context.Background()
	s := images.New(t.TempDir())

	r, err := s.Resolve(ctx, ref, images.PullMissing)
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != digest || r.From != "registry" {
		t.Fatalf("resolved %+v, want %s from the registry", r, digest)
	}
	entry, err := s.Ensure(ctx, ref, r.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := images.CommandFor(entry, "stellar-live-source", []string{"--flag"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(entry.Root, "app", "stellar-live-source"); cmd.Argv[0] != want || cmd.Argv[1] != "--flag" {
		t.Fatalf("argv %q, want [%s --flag]", cmd.Argv, want)
	}
	if cmd.Dir != filepath.Join(entry.Root, "data") {
		t.Fatalf("working dir %s, want the image's /data", cmd.Dir)
	}
	if !strings.Contains(strings.Join(cmd.Env, " "), "IMAGE_VAR=from-image") {
		t.Fatalf("image env not passed: %q", cmd.Env)
	}
	// A second resolution with pull = missing asks nothing: the cache
	// knows the tag.
	r2, err := s.Resolve(ctx, ref, images.PullMissing)
	if err != nil || r2.Digest != digest || r2.From != "cache" {
		t.Fatalf("second resolve %+v %v, want the cached %s", r2, err, digest)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Digest != digest {
		t.Fatalf("list %+v %v", list, err)
	}
	removed, err := s.Prune(nil)
	if err != nil || len(removed) != 1 {
		t.Fatalf("prune removed %v, %v", removed, err)
	}
	if _, err := os.Stat(entry.Root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pruned entry still there: %v", err)
	}
}

func TestCommandForBinLayoutAndEntrypointOnly(t *testing.T) {
	reg := registrytest.Start(t)
	bin := componentBytes(t)
	ctx := context.Background()
	s := images.New(t.TempDir())

	binImg := registrytest.Image(t, v1.Config{}, registrytest.Layer(t,
		registrytest.File{Path: "bin/x", Mode: 0o755, Data: bin}))
	ref, digest := reg.Push(t, "team/x", "1", binImg)
	e, err := s.Ensure(ctx, ref, digest)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := images.CommandFor(e, "x", nil)
	if err != nil || cmd.Argv[0] != filepath.Join(e.Root, "bin", "x") {
		t.Fatalf("bin layout: %+v %v", cmd, err)
	}
	if cmd.Dir != e.Root {
		t.Fatalf("without WorkingDir the working dir is the root, got %s", cmd.Dir)
	}

	epImg := registrytest.Image(t, v1.Config{Entrypoint: []string{"/opt/svc/run"}, Cmd: []string{"--serve"}},
		registrytest.Layer(t, registrytest.File{Path: "opt/svc/run", Mode: 0o755, Data: bin}))
	ref, digest = reg.Push(t, "team/ep", "1", epImg)
	e, err = s.Ensure(ctx, ref, digest)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err = images.CommandFor(e, "some-type", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Argv[0] != filepath.Join(e.Root, "opt", "svc", "run") || len(cmd.Argv) != 2 || cmd.Argv[1] != "--serve" {
		t.Fatalf("entrypoint layout: argv %q", cmd.Argv)
	}
}

func TestNoBinaryListsPathsTriedAndEntrypoint(t *testing.T) {
	reg := registrytest.Start(t)
	img := registrytest.Image(t, v1.Config{}, registrytest.Layer(t, registrytest.File{Path: "etc/readme", Data: []byte("x")}))
	ref, digest := reg.Push(t, "team/empty", "1", img)
	e, err := images.New(t.TempDir()).Ensure(context.Background(), ref, digest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = images.CommandFor(e, "ttp-processor", nil)
	var nb *images.NoBinaryError
	if !errors.As(err, &nb) {
		t.Fatalf("want NoBinaryError, got %v", err)
	}
	for _, p := range []string{"/app/ttp-processor", "/bin/ttp-processor", "/usr/bin/ttp-processor", "/usr/local/bin/ttp-processor", "/ttp-processor", "entrypoint"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not name %s: %v", p, err)
		}
	}
}

func TestUnreachableRegistryIsNamedAndLeavesCacheUntouched(t *testing.T) {
	dir := t.TempDir()
	s := images.New(dir)
	// A port nothing listens on: take one and close it.
	reg := "127.0.0.1:1"
	_, err := s.Resolve(context.Background(), reg+"/team/x:1", images.PullMissing)
	var ue *images.UnreachableError
	if !errors.As(err, &ue) || ue.Registry != reg {
		t.Fatalf("want UnreachableError naming %s, got %v", reg, err)
	}
	_, err = s.Ensure(context.Background(), reg+"/team/x:1", "sha256:"+strings.Repeat("a", 64))
	if !errors.As(err, &ue) {
		t.Fatalf("ensure: want UnreachableError, got %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sha256"))
	if len(entries) != 0 {
		t.Fatalf("the cache changed: %v", entries)
	}
}

func TestPullNeverWithoutCacheRefuses(t *testing.T) {
	reg := registrytest.Start(t)
	img := registrytest.Image(t, v1.Config{}, registrytest.Layer(t, registrytest.File{Path: "bin/x", Mode: 0o755, Data: []byte("#!")}))
	ref, _ := reg.Push(t, "team/never", "1", img)
	_, err := images.New(t.TempDir()).Resolve(context.Background(), ref, images.PullNever)
	if err == nil || !strings.Contains(err.Error(), `pull = "never"`) {
		t.Fatalf("want a refusal naming pull = never, got %v", err)
	}
}

func TestMovedTagResolvesToTheNewDigestWithPullAlways(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	s := images.New(t.TempDir())
	a := registrytest.Image(t, v1.Config{}, registrytest.Layer(t, registrytest.File{Path: "bin/x", Mode: 0o755, Data: []byte("a")}))
	b := registrytest.Image(t, v1.Config{}, registrytest.Layer(t, registrytest.File{Path: "bin/x", Mode: 0o755, Data: []byte("b")}))
	ref, da := reg.Push(t, "team/moving", "latest", a)
	if _, err := s.Ensure(ctx, ref, da); err != nil {
		t.Fatal(err)
	}
	_, db := reg.Push(t, "team/moving", "latest", b)
	if r, _ := s.Resolve(ctx, ref, images.PullMissing); r.Digest != da {
		t.Fatalf("pull = missing follows the cached tag: got %s, want %s", r.Digest, da)
	}
	if r, _ := s.Resolve(ctx, ref, images.PullAlways); r.Digest != db {
		t.Fatalf("pull = always asks the registry: got %s, want %s", r.Digest, db)
	}
}

func TestEscapingEntryPulledFromRegistryIsRefusedAndNamed(t *testing.T) {
	reg := registrytest.Start(t)
	dir := t.TempDir()
	img := registrytest.Image(t, v1.Config{}, registrytest.Layer(t,
		registrytest.File{Path: "app/ok", Data: []byte("fine")},
		registrytest.File{Path: "app/../../evil", Data: []byte("x")}))
	ref, digest := reg.Push(t, "team/evil", "1", img)
	_, err := images.New(dir).Ensure(context.Background(), ref, digest)
	var re *images.RefusedError
	if !errors.As(err, &re) || re.Entry != "app/../../evil" {
		t.Fatalf("want the entry app/../../evil refused, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "evil")); err == nil {
		t.Fatal("the escaping entry was written")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "sha256")); len(entries) != 0 {
		t.Fatalf("a refused image left a cache entry: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Fatalf("a refused image left a temporary folder: %v", entries)
	}
}

// A later layer may turn a folder an earlier link goes through into a link
// of its own: the finished tree is checked again.
func TestLinkThatALaterLayerMakesEscapeIsRefused(t *testing.T) {
	reg := registrytest.Start(t)
	dir := t.TempDir()
	img := registrytest.Image(t, v1.Config{},
		registrytest.Layer(t,
			registrytest.File{Path: "x/y/", Type: tar.TypeDir, Mode: 0o755},
			registrytest.File{Path: "l", Type: tar.TypeSymlink, Linkname: "x/y/../.."}),
		registrytest.Layer(t,
			registrytest.File{Path: "x/.wh.y"},
			registrytest.File{Path: "x/y", Type: tar.TypeSymlink, Linkname: ".."}))
	ref, digest := reg.Push(t, "team/late", "1", img)
	_, err := images.New(dir).Ensure(context.Background(), ref, digest)
	var re *images.RefusedError
	if !errors.As(err, &re) || re.Entry != "l" {
		t.Fatalf("want the link l refused once the second layer made it escape, got %v", err)
	}
}

// Two pulls of one image at once (two applies sharing the cache) end with
// one whole entry, and both get it.
func TestConcurrentEnsureOfOneImageMakesOneEntry(t *testing.T) {
	reg := registrytest.Start(t)
	img := registrytest.Image(t, v1.Config{}, registrytest.Layer(t,
		registrytest.File{Path: "app/x", Mode: 0o755, Data: componentBytes(t)}))
	ref, digest := reg.Push(t, "team/twice", "1", img)
	dir := t.TempDir()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			e, err := images.New(dir).Ensure(context.Background(), ref, digest)
			if err == nil {
				_, err = images.CommandFor(e, "x", nil)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sha256"))
	tmp, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(entries) != 1 || len(tmp) != 0 {
		t.Fatalf("entries %v, temporary folders left %v", entries, tmp)
	}
}

func TestMissingTagIsTheRegistrysAnswerNotUnreachable(t *testing.T) {
	reg := registrytest.Start(t)
	_, err := images.New(t.TempDir()).Resolve(context.Background(), reg.Host+"/team/none:v9", images.PullMissing)
	var ue *images.UnreachableError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "registry "+reg.Host) {
		t.Fatalf("want the registry's answer, naming it, got %v", err)
	}
}
