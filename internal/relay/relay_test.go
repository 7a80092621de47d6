package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// The components here speak the data-plane protocol the way SDK
// components do, over real gRPC on loopback: a counting source that
// resumes after its saved position, an upper-casing processor that keeps
// the source's id and position, and a de-duplicating sink.

type testSource struct {
	flowctlv1.UnimplementedSourceServiceServer
	id    string
	count int
	mu    sync.Mutex
	saved string
	// sent counts events handed to gRPC.
	sent int
}

func (s *testSource) StreamEvents(req *flowctlv1.StreamRequest, stream grpc.ServerStreamingServer[flowctlv1.Event]) error {
	start := 1
	s.mu.Lock()
	after := s.saved
	s.mu.Unlock()
	if req.GetResumeToken() != "" {
		after = req.GetResumeToken()
	}
	if after != "" {
		n, _ := strconv.Atoi(after)
		start = n + 1
	}
	for i := start; i <= s.count; i++ {
		ev := &flowctlv1.Event{
			Id: fmt.Sprintf("%s-%d", s.id, i), Type: "count", Payload: []byte(fmt.Sprintf(`{"n":%d,"word":"abc"}`, i)),
			SourceComponentId: s.id, Metadata: map[string]string{resumeTokenKey: strconv.Itoa(i)},
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
		s.mu.Lock()
		s.sent++
		s.mu.Unlock()
	}
	return nil
}

func (s *testSource) SaveState(_ context.Context, req *flowctlv1.SaveStateRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = req.GetState()[resumeTokenKey]
	return &emptypb.Empty{}, nil
}

type testProcessor struct {
	flowctlv1.UnimplementedProcessorServiceServer
}

func (p *testProcessor) Process(stream grpc.BidiStreamingServer[flowctlv1.Event, flowctlv1.Event]) error {
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		out := proto.Clone(in).(*flowctlv1.Event)
		out.Payload = []byte(strings.ToUpper(string(in.Payload)))
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

type testSink struct {
	flowctlv1.UnimplementedConsumerServiceServer
	mu    sync.Mutex
	seen  map[string]bool
	order map[string][]int // per source, the sequence numbers in arrival order (first arrivals)
	dups  int
	delay time.Duration
}

func newSink() *testSink { return &testSink{seen: map[string]bool{}, order: map[string][]int{}} }

func (k *testSink) Consume(stream grpc.ClientStreamingServer[flowctlv1.Event, flowctlv1.ConsumeResponse]) error {
	var n int64
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&flowctlv1.ConsumeResponse{EventsConsumed: n})
		}
		if err != nil {
			return err
		}
		if k.delay > 0 {
			time.Sleep(k.delay)
		}
		k.mu.Lock()
		if k.seen[ev.Id] {
			k.dups++
		} else {
			k.seen[ev.Id] = true
			seq, _ := strconv.Atoi(ev.Metadata[resumeTokenKey])
			k.order[ev.SourceComponentId] = append(k.order[ev.SourceComponentId], seq)
		}
		k.mu.Unlock()
		n++
	}
}

func (k *testSink) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.seen)
}

// serveOn runs a gRPC server with register on a loopback listener (addr
// "" picks a port) and returns its address and a stop function.
func serveOn(t *testing.T, addr string, register func(*grpc.Server)) (string, func()) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	for range 50 { // a restarted component takes its port again
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(l) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			s.Stop()
		}
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

func staticTopology(nodes []Node) Topology {
	return func(context.Context) ([]Node, error) { return nodes, nil }
}

func runRelay(t *testing.T, topo Topology) (*Relay, func()) {
	t.Helper()
	r := New(Options{Topology: topo, Poll: 50 * time.Millisecond, CommitInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return r, stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func assertInOrder(t *testing.T, k *testSink, src string, n int) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	got := k.order[src]
	if len(got) != n {
		t.Fatalf("%s: %d distinct events, want %d", src, len(got), n)
	}
	for i, s := range got {
		if s != i+1 {
			t.Fatalf("%s: event %d arrived at place %d", src, s, i+1)
		}
	}
}

func TestSourceProcessorSinkDeliversEveryEventOnceInOrder(t *testing.T) {
	const n = 10_000
	src := &testSource{id: "src", count: n}
	sink := newSink()
	sa, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterSourceServiceServer(s, src) })
	pa, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(s, &testProcessor{}) })
	ka, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterConsumerServiceServer(s, sink) })
	r, _ := runRelay(t, staticTopology([]Node{
		{Address: "source.src", ID: "src", Kind: Source, Dial: sa},
		{Address: "processor.up", ID: "up", Kind: Processor, Dial: pa, Inputs: []string{"source.src"}},
		{Address: "sink.out", ID: "out", Kind: Sink, Dial: ka, Inputs: []string{"processor.up"}},
	}))
	waitUntil(t, "every event at the sink", func() bool { return sink.count() == n })
	assertInOrder(t, sink, "src", n)
	if sink.dups != 0 {
		t.Fatalf("%d duplicates without any failure", sink.dups)
	}
	waitUntil(t, "the last position saved", func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.saved == strconv.Itoa(n)
	})
	edges := r.Edges()
	if len(edges) != 2 || edges[0].Events != n || edges[1].Events != n || edges[0].Bytes == 0 {
		t.Fatalf("edge counters: %+v", edges)
	}
}

func TestProcessorRestartMidStreamLosesNothing(t *testing.T) {
	const n = 20_000
	src := &testSource{id: "src", count: n}
	sink := newSink()
	sa, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterSourceServiceServer(s, src) })
	pa, stopProc := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(s, &testProcessor{}) })
	ka, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterConsumerServiceServer(s, sink) })
	runRelay(t, staticTopology([]Node{
		{Address: "source.src", ID: "src", Kind: Source, Dial: sa},
		{Address: "processor.up", ID: "up", Kind: Processor, Dial: pa, Inputs: []string{"source.src"}},
		{Address: "sink.out", ID: "out", Kind: Sink, Dial: ka, Inputs: []string{"processor.up"}},
	}))
	waitUntil(t, "part of the stream", func() bool { return sink.count() > n/10 })
	stopProc() // the processor dies mid-stream...
	time.Sleep(100 * time.Millisecond)
	serveOn(t, pa, func(s *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(s, &testProcessor{}) }) // ...and comes back
	waitUntil(t, "every event at the sink", func() bool { return sink.count() == n })
	assertInOrder(t, sink, "src", n)
	t.Logf("replayed (and de-duplicated by the sink): %d", sink.dups)
}

func TestFanOutAndFanIn(t *testing.T) {
	const n = 3_000
	a := &testSource{id: "a", count: n}
	b := &testSource{id: "b", count: n}
	k1, k2 := newSink(), newSink()
	aa, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterSourceServiceServer(s, a) })
	ba, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterSourceServiceServer(s, b) })
	p1, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(s, &testProcessor{}) })
	p2, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterProcessorServiceServer(s, &testProcessor{}) })
	s1, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterConsumerServiceServer(s, k1) })
	s2, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterConsumerServiceServer(s, k2) })
	// Fan-out: source.a feeds two processors, each into its own sink.
	// Fan-in: sink.two also reads source.b directly.
	runRelay(t, staticTopology([]Node{
		{Address: "source.a", ID: "a", Kind: Source, Dial: aa},
		{Address: "source.b", ID: "b", Kind: Source, Dial: ba},
		{Address: "processor.p1", ID: "p1", Kind: Processor, Dial: p1, Inputs: []string{"source.a"}},
		{Address: "processor.p2", ID: "p2", Kind: Processor, Dial: p2, Inputs: []string{"source.a"}},
		{Address: "sink.one", ID: "one", Kind: Sink, Dial: s1, Inputs: []string{"processor.p1"}},
		{Address: "sink.two", ID: "two", Kind: Sink, Dial: s2, Inputs: []string{"processor.p2", "source.b"}},
	}))
	waitUntil(t, "both sinks complete", func() bool { return k1.count() == n && k2.count() == 2*n })
	assertInOrder(t, k1, "a", n)
	assertInOrder(t, k2, "a", n)
	assertInOrder(t, k2, "b", n)
}

func TestASlowSinkHoldsTheSourceBack(t *testing.T) {
	// Backpressure: with a sink far slower than the source, what the source
	// has handed to gRPC stays within the buffers and windows in between,
	// instead of running ahead of the sink.
	const n = 100_000
	src := &testSource{id: "src", count: n}
	sink := newSink()
	sink.delay = time.Millisecond
	sa, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterSourceServiceServer(s, src) })
	ka, _ := serveOn(t, "", func(s *grpc.Server) { flowctlv1.RegisterConsumerServiceServer(s, sink) })
	runRelay(t, staticTopology([]Node{
		{Address: "source.src", ID: "src", Kind: Source, Dial: sa},
		{Address: "sink.out", ID: "out", Kind: Sink, Dial: ka, Inputs: []string{"source.src"}},
	}))
	waitUntil(t, "some events at the sink", func() bool { return sink.count() > 500 })
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		src.mu.Lock()
		sent := src.sent
		src.mu.Unlock()
		got := sink.count()
		// Events are ~60 bytes: gRPC's windows (64 KiB each way, twice)
		// and the relay's queue hold a few thousand at most.
		if ahead := sent - got; ahead > 20_000 {
			t.Fatalf("the source ran %d events ahead of the sink", ahead)
		}
	}
}
