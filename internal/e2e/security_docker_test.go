package e2e

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/pkg/contract"
)

// A container's spec-hash label and FLOWCTL_SPEC_HASH do not let its
// sensitive value be guessed, and the control plane of a pipeline with
// containers listens on the Docker bridge (a process-only one does not:
// TestStatusSecurityListsListenersPortsAndWhereTheyAreBound).
func TestDockerLabelsDoNotLetASensitiveValueBeGuessedAndTheBridgeIsServed(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	df.writeDocker([]dcomp{{kind: "source", id: "app", env: map[string]string{"API_KEY": "${var.api_key}", "MODE": "live"}}})
	b, err := os.ReadFile(df.path("pipeline.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	df.write("pipeline.hcl", string(b)+"\nvariable \"api_key\" {\n  default   = \""+theSecret+"\"\n  sensitive = true\n}\n")
	df.apply()

	c := desiredApp(t, df.fixture)
	guessed := guessHash(c, theSecret)
	if guessed != c.UnkeyedSpecHash() {
		t.Fatal("filling the secret into the redacted spec does not give the unkeyed hash: the guess proves nothing")
	}
	rec := df.records()["source.app"]
	boxes := df.boxes()["source.app"]
	if len(boxes) != 1 {
		t.Fatalf("containers of source.app: %+v", boxes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ins, err := df.cli.ContainerInspect(ctx, boxes[0].id)
	if err != nil {
		t.Fatal(err)
	}
	var envHash string
	for _, kv := range ins.Config.Env {
		if v, ok := strings.CutPrefix(kv, contract.EnvSpecHash+"="); ok {
			envHash = v
		}
	}
	for where, h := range map[string]string{"the io.flowctl.spec-hash label": boxes[0].hash, contract.EnvSpecHash: envHash} {
		if h == "" || h == guessed || h != rec.SpecHash {
			t.Errorf("%s is %q: want the state's keyed hash %s, never the guessable %s", where, h, rec.SpecHash, guessed)
		}
	}

	sr := df.serveRecord()
	gw := serve.DockerGatewayHost()
	if sr == nil || gw == "" {
		t.Fatalf("serve record %+v, bridge %q", sr, gw)
	}
	_, port, _ := net.SplitHostPort(sr.GRPC)
	if want := net.JoinHostPort(gw, port); !slices.Contains(sr.AlsoGRPC, want) {
		t.Errorf("the control plane of a pipeline with a container does not listen on the bridge %s: %+v (%s)", want, sr.AlsoGRPC, sr.Gateway)
	}
	if !slices.Contains(listenersOn(t, sr.GRPC), netip.MustParseAddr(gw)) {
		t.Errorf("/proc/net/tcp shows nothing listening on the Docker bridge %s at the control plane's port", gw)
	}
	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
}
