// Package dockertest helps tests that need a real Docker engine: it finds
// the engine (skipping the test when there is none, failing it in CI),
// builds the test component into images FROM scratch locally (nothing is
// ever pulled: no registry is reachable), and removes what a test's
// pipeline left behind.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/testutil"
)

// Labels flowctl puts on containers (the docker provider's; repeated here
// so that this package does not depend on the code it tests).
const (
	LabelPipeline  = "io.flowctl.pipeline"
	LabelComponent = "io.flowctl.component"
	LabelSpecHash  = "io.flowctl.spec-hash"
	LabelLineage   = "io.flowctl.lineage"
	LabelInstance  = "io.flowctl.instance"
)

// InCI reports whether the tests run in CI (CI=true), where a missing
// engine is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Engine returns a client of the engine DOCKER_HOST names (default
// unix:///var/run/docker.sock). With no engine it skips the test, or fails
// it in CI. The client is closed when the test ends.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
		if err != nil {
			_ = cli.Close()
		}
	}
	if err != nil {
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = client.DefaultDockerHost
		}
		if InCI() {
			t.Fatalf("no Docker engine reachable at %s: %v (CI=true: a Docker engine is required; .ci/run starts dockerd)", host, err)
		}
		t.Skipf("no Docker engine reachable at %s (%v): skipping (in CI, with CI=true, this fails instead)", host, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// ImageOptions select a variant of the test image.
type ImageOptions struct {
	// Healthcheck adds a HEALTHCHECK that runs "testcomponent healthcheck"
	// every 100ms; failures in the first 3s do not count.
	Healthcheck bool
	// SDK makes the image of internal/testutil/sdkcomponent (a component
	// that registers with the control plane) instead of the test
	// component.
	SDK bool
}

var (
	imagesMu sync.Mutex
	images   = map[string]string{}
)

// TestImage returns the tag of an image FROM scratch holding only the
// static test component as its entrypoint, with TC_LISTEN_HOST=0.0.0.0 (a
// container is reached on its network address). The tag names the
// binary's hash and the variant (flowctl-test/tc:<hash>), so the image is
// built once per machine and reused while the test component is unchanged.
func TestImage(t testing.TB, cli *client.Client, opts ImageOptions) string {
	t.Helper()
	path := testutil.BuildBinaries(t).TestComponent
	if opts.SDK {
		path = testutil.BuildBinaries(t, testutil.WithSDKComponent()).SDKComponent
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch\nCOPY tc /tc\nENV TC_LISTEN_HOST=0.0.0.0\nLABEL io.flowctl.test=1\nENTRYPOINT [\"/tc\"]\n"
	if opts.SDK {
		dockerfile = strings.Replace(dockerfile, "io.flowctl.test=1", "io.flowctl.test=sdk", 1)
	}
	if opts.Healthcheck {
		dockerfile += "HEALTHCHECK --interval=100ms --timeout=2s --retries=3 --start-period=3s CMD [\"/tc\", \"healthcheck\"]\n"
	}
	sum := sha256.New()
	sum.Write(bin)
	sum.Write([]byte(dockerfile))
	tag := "flowctl-test/tc:" + hex.EncodeToString(sum.Sum(nil)[:8])

	imagesMu.Lock()
	defer imagesMu.Unlock()
	if _, ok := images[tag]; ok {
		return tag
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, tag); err == nil {
		images[tag] = tag
		return tag
	}
	if err := BuildImage(ctx, cli, tag, dockerfile, map[string][]byte{"tc": bin}); err != nil {
		t.Fatalf("build test image %s: %v", tag, err)
	}
	images[tag] = tag
	return tag
}

// ExampleImage returns the tag of the example component name
// (examples/components/NAME: counter-source, transform-processor,
// file-sink) as an image FROM scratch, built from its own Dockerfile and
// its static binary — what `make images` builds, under a tag that names
// their hash (flowctl-test/NAME:<hash>), so it is built once per machine
// and reused while neither changes.
func ExampleImage(t testing.TB, cli *client.Client, name string) string {
	t.Helper()
	path, ok := testutil.BuildBinaries(t, testutil.WithExamples()).Examples[name]
	if !ok {
		t.Fatalf("no example component %q", name)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "examples", "components", name, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	sum.Write(bin)
	sum.Write(dockerfile)
	tag := "flowctl-test/" + name + ":" + hex.EncodeToString(sum.Sum(nil)[:8])

	imagesMu.Lock()
	defer imagesMu.Unlock()
	if _, ok := images[tag]; ok {
		return tag
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		if err := BuildImage(ctx, cli, tag, string(dockerfile), map[string][]byte{name: bin}); err != nil {
			t.Fatalf("build image %s: %v", tag, err)
		}
	}
	images[tag] = tag
	return tag
}

// BuildImage builds an image from a Dockerfile and files, with the engine's
// builder and a tar context (nothing is pulled for an image FROM scratch).
func BuildImage(ctx context.Context, cli *client.Client, tag, dockerfile string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	all := map[string][]byte{"Dockerfile": []byte(dockerfile)}
	for k, v := range files {
		all[k] = v
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(all[n])), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(all[n]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// Containers lists the containers labelled with the pipeline (any state).
func Containers(t testing.TB, cli *client.Client, pipeline string) []container.Summary {
	t.Helper()
	cs, err := cli.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", LabelPipeline+"="+pipeline)),
	})
	if err != nil {
		t.Fatalf("list containers of %s: %v", pipeline, err)
	}
	return cs
}

// NetworkExists reports whether the network exists.
func NetworkExists(t testing.TB, cli *client.Client, name string) bool {
	t.Helper()
	_, err := cli.NetworkInspect(context.Background(), name, network.InspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("inspect network %s: %v", name, err)
	}
	return true
}

// AssertNoNetwork fails the test if the network exists and could have been
// removed. Docker 20.10 sometimes loses count of a network's endpoints when
// containers on it stop concurrently, and then refuses to remove it ("has
// active endpoints") with no container on it: that is logged, not failed,
// as nobody can remove such a network but a restart of the engine.
func AssertNoNetwork(t testing.TB, cli *client.Client, name string) {
	t.Helper()
	if !NetworkExists(t, cli, name) {
		return
	}
	if phantomEndpoints(cli, name) {
		t.Logf("network %s is left with a phantom endpoint (an engine bug): not counted", name)
		return
	}
	t.Errorf("network %s was left behind", name)
}

// phantomEndpoints reports whether the network has no container and yet
// cannot be removed for its "active endpoints". It removes the network when
// it can.
func phantomEndpoints(cli *client.Client, name string) bool {
	ctx := context.Background()
	n, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil || len(n.Containers) > 0 {
		return false
	}
	err = cli.NetworkRemove(ctx, name)
	return err != nil && strings.Contains(err.Error(), "active endpoints")
}

// RemovePipeline force-removes every container of the pipeline and its
// network, and returns the names of what it found: the last resort of a
// test's cleanup. A network with phantom endpoints (see AssertNoNetwork)
// is not counted.
func RemovePipeline(cli *client.Client, pipeline string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var found []string
	cs, _ := cli.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", LabelPipeline+"="+pipeline)),
	})
	for _, c := range cs {
		found = append(found, "container "+strings.TrimPrefix(strings.Join(c.Names, ","), "/"))
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	name := "flowctl-" + pipeline
	if _, err := cli.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		if len(cs) > 0 {
			_ = cli.NetworkRemove(ctx, name)
			found = append(found, "network "+name)
		} else if !phantomEndpoints(cli, name) {
			found = append(found, "network "+name)
		}
	}
	return found
}

// PipelineName is a pipeline name unique to this test and process (at most
// 63 characters): containers of one test are never another's.
func PipelineName(t testing.TB, prefix string) string {
	n := strings.ToLower(t.Name())
	var b strings.Builder
	for _, r := range n {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	seq := nameSeq.Add(1)
	suffix := fmt.Sprintf("-%x-%d", os.Getpid(), seq)
	body := strings.Trim(b.String(), "-")
	if max := 50 - len(prefix) - len(suffix); len(body) > max {
		body = strings.Trim(body[len(body)-max:], "-")
	}
	return prefix + body + suffix
}

var nameSeq atomic.Int64
