package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
	"github.com/flowctl/flowctl/internal/testutil/listeners"
	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// TestDataPlaneOfAProcessPipelineIsClosedToOthersAndOpenToTheRelay replays
// the attacks of issue #16 on a running quickstart-like pipeline, from this
// test process (no component): reading the stream from a position,
// injecting a forged event into the sink, moving the source's position.
// Each is refused, the ports listen on loopback only, and the relay still
// moves every event exactly once.
func TestDataPlaneOfAProcessPipelineIsClosedToOthersAndOpenToTheRelay(t *testing.T) {
	f := newFixture(t)
	ex := testutil.BuildBinaries(t, testutil.WithExamples()).Examples
	const n = 3_000
	out := f.path("out/events.ndjson")
	f.write("pipeline.hcl", dataflowPipeline(f, ex, n, out))
	f.apply()
	waitFor(t, 120*time.Second, "every event at the sink", func() bool { return len(sinkLines(t, out)) >= n })

	recs := f.records()
	for _, addr := range []string{"source.counter", "processor.transform", "sink.file"} {
		for name, port := range recs[addr].Ports {
			got, err := listeners.On(port)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				t.Fatalf("%s: nothing listens on its %s %d", addr, name, port)
			}
			for _, a := range got {
				if !a.IsLoopback() {
					t.Errorf("%s: %s %d listens on %v, not loopback only", addr, name, port, a)
				}
			}
		}
	}

	src := "127.0.0.1:" + strconv.Itoa(recs["source.counter"].Ports[contract.EnvPort])
	sink := "127.0.0.1:" + strconv.Itoa(recs["sink.file"].Ports[contract.EnvPort])
	key, err := tokens.LoadOrCreateDataKey(tokens.DefaultDataKeyPath(f.statePath()))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := tokens.LoadSecret(tokens.DefaultSecretPath(f.statePath()))
	if err != nil {
		t.Fatal(err)
	}
	componentToken, err := tokens.NewIssuer(secret).Issue(tokens.Subject{Address: "sink.file", Pipeline: f.name, Lineage: f.meta().Lineage, InstanceID: recs["sink.file"].InstanceID})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := tokens.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := tokens.NewDataIssuer(otherKey, f.name).Issue(contract.DataPlaneRelaySubject)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := tokens.NewDataIssuer(key, f.name).Issue("sink.file")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(addr, tok string) *grpc.ClientConn {
		var opts []grpc.DialOption
		if tok != "" {
			opts = append(opts, component.WithDataToken(tok))
		}
		c, err := component.Dial(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	for name, tok := range map[string]string{"no token": "", "a component token": componentToken, "another key's data token": forged} {
		events, err := flowctlv1.NewSourceServiceClient(dial(src, tok)).StreamEvents(ctx, &flowctlv1.StreamRequest{ResumeToken: "5"})
		if err == nil {
			_, err = events.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: StreamEvents(resume_token 5): %v; want Unauthenticated", name, err)
		}
		consume, err := flowctlv1.NewConsumerServiceClient(dial(sink, tok)).Consume(ctx)
		if err == nil {
			_ = consume.Send(&component.Event{Id: "rt-forged-1", Type: "tick", SourceComponentId: "attacker", Payload: []byte(`{"stage":"transformed"}`)})
			_, err = consume.CloseAndRecv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: Consume(forged event): %v; want Unauthenticated", name, err)
		}
		_, err = flowctlv1.NewSourceServiceClient(dial(src, tok)).SaveState(ctx, &flowctlv1.SaveStateRequest{State: map[string]string{contract.ResumeTokenKey: "996"}})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: SaveState: %v; want Unauthenticated", name, err)
		}
	}
	_, err = flowctlv1.NewSourceServiceClient(dial(src, peer)).SaveState(ctx, &flowctlv1.SaveStateRequest{State: map[string]string{contract.ResumeTokenKey: "996"}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("SaveState with a component's data token: %v; want PermissionDenied", err)
	}

	time.Sleep(500 * time.Millisecond) // anything doubled or forged would show now
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "rt-forged-1") {
		t.Fatal("the forged event reached the sink's file")
	}
	assertOncePerSource(t, sinkLines(t, out), "counter", n)
	f.must(0, "destroy", "-auto-approve")
	f.assertNoProcesses()
}

// TestDataPlaneOfADockerPipelineRefusesCallersFromTheHost: a container's
// ports listen on the pipeline network, which the host reaches too (the
// bridge); nothing is published, and a call from the host without the
// relay's token is refused while the relay moves every event.
func TestDataPlaneOfADockerPipelineRefusesCallersFromTheHost(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	images := map[string]string{}
	for _, name := range []string{"counter-source", "transform-processor", "file-sink"} {
		images[name] = dockertest.ExampleImage(t, df.cli, name)
	}
	const n = 1_000
	out := df.path("out")
	if err := os.MkdirAll(out, 0o777); err != nil {
		t.Fatal(err)
	}
	df.write("pipeline.hcl", dockerDataflowPipeline(df, images, n, out))
	df.apply()
	file := out + "/events.ndjson"
	waitFor(t, 120*time.Second, "every event at the sink", func() bool { return len(sinkLines(t, file)) >= n })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := df.records()
	addrOf := func(addr string) string {
		ins, err := df.cli.ContainerInspect(ctx, containerOf(recs[addr].Handle))
		if err != nil {
			t.Fatal(err)
		}
		for p, bindings := range ins.NetworkSettings.Ports {
			if len(bindings) > 0 {
				t.Errorf("%s publishes %s on the host: %v", addr, p, bindings)
			}
		}
		ep := ins.NetworkSettings.Networks[df.network()]
		if ep == nil || ep.IPAddress == "" {
			t.Fatalf("%s has no address on %s", addr, df.network())
		}
		return ep.IPAddress + ":" + strconv.Itoa(recs[addr].Ports[contract.EnvPort])
	}
	src, sink := addrOf("source.counter"), addrOf("sink.file")
	srcConn, err := component.Dial(src)
	if err != nil {
		t.Fatal(err)
	}
	defer srcConn.Close()
	events, err := flowctlv1.NewSourceServiceClient(srcConn).StreamEvents(ctx, &flowctlv1.StreamRequest{ResumeToken: "5"})
	if err == nil {
		_, err = events.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("StreamEvents from the host: %v; want Unauthenticated", err)
	}
	_, err = flowctlv1.NewSourceServiceClient(srcConn).SaveState(ctx, &flowctlv1.SaveStateRequest{State: map[string]string{contract.ResumeTokenKey: "996"}})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("SaveState from the host: %v; want Unauthenticated", err)
	}
	sinkConn, err := component.Dial(sink)
	if err != nil {
		t.Fatal(err)
	}
	defer sinkConn.Close()
	consume, err := flowctlv1.NewConsumerServiceClient(sinkConn).Consume(ctx)
	if err == nil {
		_ = consume.Send(&component.Event{Id: "rt-forged-1", Type: "tick", SourceComponentId: "attacker", Payload: []byte(`{"stage":"transformed"}`)})
		_, err = consume.CloseAndRecv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("Consume from the host: %v; want Unauthenticated", err)
	}
	time.Sleep(500 * time.Millisecond) // anything doubled or forged would show now
	assertOncePerSource(t, sinkLines(t, file), "counter", n)
	if b, _ := os.ReadFile(file); strings.Contains(string(b), "rt-forged-1") {
		t.Fatal("the forged event reached the sink's file")
	}
	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
}

// TestTokensRotateReplacesTheDataPlaneKeyAndTheFlowResumesAfterApply:
// after a rotation the relay signs with the new key, the components still
// hold the old one and refuse it, so events wait; the next apply replaces
// them and every event arrives once.
func TestTokensRotateReplacesTheDataPlaneKeyAndTheFlowResumesAfterApply(t *testing.T) {
	f := newFixture(t)
	ex := testutil.BuildBinaries(t, testutil.WithExamples()).Examples
	const n = 3_000
	out := f.path("out/events.ndjson")
	f.write("pipeline.hcl", strings.Replace(dataflowPipeline(f, ex, n, out), `COUNTER_RATE  = "0"`, `COUNTER_RATE  = "150"`, 1))
	f.apply()
	waitFor(t, 60*time.Second, "the first events at the sink", func() bool { return len(sinkLines(t, out)) > 100 })

	keyPath := tokens.DefaultDataKeyPath(f.statePath())
	before, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	f.must(0, "tokens", "rotate")
	after, err := os.ReadFile(keyPath)
	if err != nil || string(after) == string(before) {
		t.Fatalf("the data-plane key did not change (%v)", err)
	}
	// The components refuse the relay's new tokens: the sink stops growing.
	var stalled int
	waitFor(t, 60*time.Second, "the flow to stall", func() bool {
		a := len(sinkLines(t, out))
		time.Sleep(1500 * time.Millisecond)
		stalled = len(sinkLines(t, out))
		return a == stalled
	})
	if stalled >= n {
		t.Fatalf("every event arrived before the rotation took effect (%d); the test shows nothing", stalled)
	}
	f.apply()
	waitFor(t, 120*time.Second, "every event at the sink", func() bool { return len(sinkLines(t, out)) >= n })
	time.Sleep(500 * time.Millisecond)
	assertOncePerSource(t, sinkLines(t, out), "counter", n)
	f.must(0, "destroy", "-auto-approve")
	f.assertNoProcesses()
}
