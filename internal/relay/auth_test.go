package relay

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// serveVerified runs a gRPC server that checks data tokens with v, as SDK
// components do, on a loopback port.
func serveVerified(t *testing.T, v *component.DataVerifier, register func(*grpc.Server)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(v.ServerOptions()...)
	register(s)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func verifiedPipeline(t *testing.T, v *component.DataVerifier, n int) (*testSource, *testSink, Topology) {
	src := &testSource{id: "src", count: n}
	sink := newSink()
	sa := serveVerified(t, v, func(s *grpc.Server) { flowctlv1.RegisterSourceServiceServer(s, src) })
	pa := serveVerified(t, v, func(s *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(s, &testProcessor{}) })
	ka := serveVerified(t, v, func(s *grpc.Server) { flowctlv1.RegisterConsumerServiceServer(s, sink) })
	return src, sink, staticTopology([]Node{
		{Address: "source.src", ID: "src", Kind: Source, Dial: sa},
		{Address: "processor.up", ID: "up", Kind: Processor, Dial: pa, Inputs: []string{"source.src"}},
		{Address: "sink.out", ID: "out", Kind: Sink, Dial: ka, Inputs: []string{"processor.up"}},
	})
}

func TestTheRelaySendsItsDataTokenOnEveryCall(t *testing.T) {
	const n = 5_000
	key, err := tokens.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	src, sink, topo := verifiedPipeline(t, component.NewDataVerifier(key.Public()), n)
	relayTokens := tokens.NewDataIssuer(key, "").Tokens(contract.DataPlaneRelaySubject)
	r := New(Options{Topology: topo, Poll: 50 * time.Millisecond, CommitInterval: 50 * time.Millisecond,
		Token: func(context.Context) (string, error) { return relayTokens.Token() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	waitUntil(t, "every event at the sink", func() bool { return sink.count() == n })
	assertInOrder(t, sink, "src", n)
	// SaveState, which only the relay's token may call, went through.
	waitUntil(t, "the last position saved", func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.saved == strconv.Itoa(n)
	})
}

func TestARelayWithoutTheTokenMovesNothing(t *testing.T) {
	key, err := tokens.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	_, sink, topo := verifiedPipeline(t, component.NewDataVerifier(key.Public()), 100)
	r, stop := runRelay(t, topo) // no Options.Token
	// Each session fails at its first refused call and the relay tries
	// again: three failed sessions.
	waitUntil(t, "the refused calls counted", func() bool {
		errs := r.NodeErrors()
		return errs["source.src"]+errs["processor.up"]+errs["sink.out"] >= 3
	})
	stop()
	if got := sink.count(); got != 0 {
		t.Fatalf("the sink got %d events from a relay without a token", got)
	}
}
