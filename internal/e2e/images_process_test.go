package e2e

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

// imageRig is a fixture whose flowctl keeps its image cache in the test's
// folder, and a real registry on loopback.
type imageRig struct {
	*fixture
	reg   *registrytest.Registry
	cache string
	bin   []byte
}

func newImageRig(t *testing.T) *imageRig {
	t.Helper()
	cache := t.TempDir()
	t.Setenv(images.EnvCacheDir, cache) // flowctl inherits the environment
	f := newFixture(t)
	bin, err := os.ReadFile(f.tc)
	if err != nil {
		t.Fatal(err)
	}
	return &imageRig{fixture: f, reg: registrytest.Start(t), cache: cache, bin: bin}
}

// push puts the test component in an image at path (or as the entrypoint
// when path is ""), with env, under repo:tag.
func (r *imageRig) push(repo, tag, path string, env ...string) (ref, digest string) {
	r.t.Helper()
	t := r.t.(*testing.T)
	cfg := v1.Config{Env: env}
	file := path
	if path == "" {
		file = "/opt/component/run"
		cfg.Entrypoint = []string{file}
	}
	img := registrytest.Image(t, cfg, registrytest.Layer(t,
		registrytest.File{Path: strings.TrimPrefix(file, "/"), Mode: 0o755, Data: r.bin}))
	return r.reg.Push(t, repo, tag, img)
}

// logOf is the log file of the process component at addr.
func (r *imageRig) logOf(addr string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, ".flowctl", "logs", addr+".log"))
	return string(b)
}

const registryStyleYAML = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: %s
  namespace: stellar
  labels: {team: data}
  annotations: {owner: ops}
spec:
  description: the ecosystem's registry style, run as local processes
  driver: %s
  component_registry: %s/withobsrvr
  sources:
    - id: ledger
      type: stellar-live-source@v1.0.0
      health_check: /health
      config:
        tc_print: "ledger {n}"
        tc_print_interval: 100ms
  sinks:
    - id: archive
      image: %s
      inputs: [ledger]
      health_check: /health
      health_endpoint: http://localhost:8088/health
`

func TestImagesRegistryStyleAndExplicitImageRunOnTheProcessExecutor(t *testing.T) {
	r := newImageRig(t)
	r.push("withobsrvr/stellar-live-source", "v1.0.0", "/app/stellar-live-source")
	sinkRef, _ := r.push("team/archive", "v2", "", "TC_PRINT=archived {n}", "TC_PRINT_INTERVAL=100ms")
	r.write("pipeline.yaml", fmt.Sprintf(registryStyleYAML, r.name, "process", r.reg.Host, sinkRef))
	// health_endpoint names a fixed port the test component does not use:
	// drop it; it stays accepted as the ecosystem writes it (validate).
	v := r.must(0, "validate", "pipeline.yaml")
	_ = v
	r.write("pipeline.yaml", strings.Replace(fmt.Sprintf(registryStyleYAML, r.name, "process", r.reg.Host, sinkRef), "      health_endpoint: http://localhost:8088/health\n", "", 1))

	p := r.must(0, "plan", "-no-color")
	for _, want := range []string{"image_digest", "sha256:", "source.ledger", "sink.archive"} {
		if !strings.Contains(p.out, want) {
			t.Fatalf("plan does not show %q:\n%s", want, p)
		}
	}
	r.apply()
	waitFor(t, 30*time.Second, "both components' output", func() bool {
		return strings.Contains(r.logOf("source.ledger"), "ledger 2") && strings.Contains(r.logOf("sink.archive"), "archived 2")
	})
	if got := r.plan().actions(); len(got) != 0 {
		t.Fatalf("a second plan wants %v; the cached images should change nothing", got)
	}
	list := r.must(0, "images", "list")
	if !strings.Contains(list.out, "stellar-live-source:v1.0.0") || !strings.Contains(list.out, "true") {
		t.Fatalf("images list does not show the image in use:\n%s", list)
	}
	if out := r.must(0, "images", "prune").out; !strings.Contains(out, "0 image(s) removed") {
		t.Fatalf("prune removed images in use:\n%s", out)
	}
	r.must(0, "destroy", "-auto-approve")
	if out := r.must(0, "images", "prune").out; !strings.Contains(out, "2 image(s) removed") {
		t.Fatalf("prune after destroy:\n%s", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(r.cache, "sha256")); len(entries) != 0 {
		t.Fatalf("pruned entries remain: %v", entries)
	}
}

func TestImagesMovedTagIsDriftPlanShows(t *testing.T) {
	r := newImageRig(t)
	ref, first := r.push("team/mover", "latest", "/bin/mover", "TC_PRINT=first {n}")
	// The ecosystem's `driver: local` file, with an explicit image.
	r.write("pipeline.yaml", fmt.Sprintf(`apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: %s
spec:
  driver: local
  sources:
    - id: mover
      image: %s
      pull: always
`, r.name, ref))
	r.apply()
	_, second := r.push("team/mover", "latest", "/bin/mover", "TC_PRINT=second {n}")
	out := r.must(0, "plan", "-no-color").out
	want := fmt.Sprintf("image tag moved: %s… → %s…", first[:19], second[:19])
	if !strings.Contains(out, want) {
		t.Fatalf("plan does not show %q:\n%s", want, out)
	}
	if got := r.plan().actions(); len(got) != 1 || !strings.HasPrefix(got[0], "replace source.mover") {
		t.Fatalf("a moved tag should replace the component: %v", got)
	}
}

func TestImagesSignaturePolicyRefusesBeforeAnythingStarts(t *testing.T) {
	r := newImageRig(t)
	ref, digest := r.push("team/signed", "v1", "/app/signed")
	key := registrytest.NewKey(t)
	key.WritePublic(t, r.dir, "cosign.pub")
	r.write("pipeline.hcl", fmt.Sprintf(`
pipeline %q {
  image_policy {
    require_signature = true
    public_key        = "cosign.pub"
  }
}

source "signed" {
  image = %q
}
`, r.name, ref))
	res := r.must(1, "apply", "-auto-approve")
	if !strings.Contains(res.err, "unsigned") || !strings.Contains(res.err, "source.signed") {
		t.Fatalf("an unsigned image: want refused naming the component\n%s", res)
	}
	if _, err := os.Stat(r.statePath()); err == nil && len(r.records()) != 0 {
		t.Fatalf("a refused apply recorded components: %v", r.records())
	}
	if left := procsOf(r.name); len(left) != 0 {
		t.Fatalf("a refused apply started processes: %v", left)
	}

	repo := r.reg.Host + "/team/signed"
	body := registrytest.Payload(t, repo, digest)
	r.reg.PutSignature(t, repo, digest, append(body, ' '), key.SignPayload(t, body))
	if res := r.must(1, "plan"); !strings.Contains(res.err, "does not match") {
		t.Fatalf("a tampered payload: want refused\n%s", res)
	}

	r.reg.Sign(t, key, repo, digest)
	p := r.must(0, "plan", "-no-color")
	if !strings.Contains(p.out, digest) || !strings.Contains(p.out, "image_signed_by") {
		t.Fatalf("plan should show the verified digest and key:\n%s", p)
	}
	r.apply()
}

func TestImagesUnreachableRegistryAndEscapingEntryChangeNothing(t *testing.T) {
	r := newImageRig(t)
	r.write("pipeline.hcl", fmt.Sprintf(`
pipeline %q {}

source "far" {
  image = "127.0.0.1:1/team/far:v1"
}
`, r.name))
	res := r.must(1, "apply", "-auto-approve")
	if !strings.Contains(res.err, "registry 127.0.0.1:1 cannot be reached") {
		t.Fatalf("want the registry named\n%s", res)
	}
	if _, err := os.Stat(r.statePath()); err == nil && len(r.records()) != 0 {
		t.Fatal("state changed")
	}

	t2 := r.t.(*testing.T)
	evil := registrytest.Image(t2, v1.Config{}, registrytest.Layer(t2,
		registrytest.File{Path: "app/evil", Mode: 0o755, Data: r.bin},
		registrytest.File{Path: "app/cfg", Type: tar.TypeSymlink, Linkname: "../../../etc"}))
	ref, _ := r.reg.Push(t2, "team/evil", "v1", evil)
	r.write("pipeline.hcl", fmt.Sprintf(`
pipeline %q {}

source "evil" {
  image = %q
}
`, r.name, ref))
	res = r.must(1, "apply", "-auto-approve")
	if !strings.Contains(res.err, `"app/cfg" refused`) {
		t.Fatalf("want the entry app/cfg named\n%s", res)
	}
	if left := procsOf(r.name); len(left) != 0 || len(r.records()) != 0 {
		t.Fatalf("an image refused at extraction started something: %v %v", left, r.records())
	}
	if entries, _ := os.ReadDir(filepath.Join(r.cache, "sha256")); len(entries) != 0 {
		t.Fatalf("a refused image was cached: %v", entries)
	}
}
