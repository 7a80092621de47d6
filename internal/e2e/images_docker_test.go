package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/flowctl/flowctl/internal/testutil/dockertest"
	"github.com/flowctl/flowctl/internal/testutil/registrytest"
)

// TestImagesDriverContainerPullsARegistryStyleSignedImageThroughTheEngine
// is the ecosystem's `driver: container` file: the engine pulls the
// registry-style component from a real registry on loopback (no TLS, as
// the engine allows for 127.0.0.1), after flowctl verified its signature.
func TestImagesDriverContainerPullsARegistryStyleSignedImageThroughTheEngine(t *testing.T) {
	cli := dockertest.Engine(t)
	var ref, name string
	// Registered first, so it runs after the fixture's destroy.
	t.Cleanup(func() {
		if name == "" {
			return
		}
		if left := dockertest.RemovePipeline(cli, name); len(left) > 0 {
			t.Errorf("the destroy left %v", left)
		}
		_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true})
	})
	r := newImageRig(t)
	name = r.name
	img := registrytest.Image(t, v1.Config{Entrypoint: []string{"/app/ttp-processor"}, Env: []string{"TC_LISTEN_HOST=0.0.0.0"}},
		registrytest.Layer(t, registrytest.File{Path: "app/ttp-processor", Mode: 0o755, Data: r.bin}))
	// A repository of the test's own, so that no other run's pull is reused.
	repo := "withobsrvr-" + strings.ToLower(r.name)
	ref, digest := r.reg.Push(t, repo+"/ttp-processor", "v1.0.0", img)
	key := registrytest.NewKey(t)
	key.WritePublic(t, r.dir, "cosign.pub")
	r.reg.Sign(t, key, r.reg.Host+"/"+repo+"/ttp-processor", digest)
	r.write("pipeline.yaml", fmt.Sprintf(`apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: %s
spec:
  driver: container
  component_registry: %s/%s
  image_policy:
    require_signature: true
    public_key: cosign.pub
  sources:
    - id: ttp
      type: ttp-processor@v1.0.0
      health_check: /health
      config:
        tc_print: "container {n}"
        tc_print_interval: 100ms
`, r.name, r.reg.Host, repo))
	r.must(0, "validate", "pipeline.yaml")
	p := r.must(0, "plan", "-no-color")
	if !strings.Contains(p.out, digest) || !strings.Contains(p.out, "image_signed_by") {
		t.Fatalf("plan should show the verified digest and key:\n%s", p)
	}
	r.apply()
	got := dockertest.Containers(t, cli, r.name)
	if len(got) != 1 || got[0].State != "running" {
		t.Fatalf("want one running container, got %+v", got)
	}
	if !strings.Contains(r.must(0, "logs", "source.ttp").out, "container 1") {
		t.Fatal("the container's log lacks its output")
	}
}
