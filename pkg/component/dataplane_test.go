package component_test

import (
	"bytes"
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/flowctl/flowctl/pkg/component"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// counting emits "<id>-<seq>" for seq After+1 … last (no end when last is
// 0), with payloads of pad bytes, the position being seq.
func counting(id string, last uint64, pad int) component.SourceFunc {
	return func(ctx context.Context, req component.StreamRequest, emit component.Emit) error {
		var after uint64
		if req.After != "" {
			n, err := strconv.ParseUint(req.After, 10, 64)
			if err != nil {
				return status.Errorf(codes.InvalidArgument, "resume token %q", req.After)
			}
			after = n
		}
		payload := bytes.Repeat([]byte("x"), pad)
		for seq := after + 1; last == 0 || seq <= last; seq++ {
			pos := strconv.FormatUint(seq, 10)
			if err := emit(&component.Event{Id: id + "-" + pos, Type: "count", Payload: payload}, pos); err != nil {
				return err
			}
		}
		return nil
	}
}

// passThrough is a processor that tags each event.
var passThrough = component.ProcessorFunc(func(_ context.Context, ev *component.Event) ([]*component.Event, error) {
	if ev.Metadata == nil {
		ev.Metadata = map[string]string{}
	}
	ev.Metadata["processed"] = "yes"
	return []*component.Event{ev}, nil
})

// collector is a sink that records what it consumed.
type collector struct {
	mu  sync.Mutex
	ids []string
	evs []*component.Event
}

func (c *collector) Consume(_ context.Context, ev *component.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, ev.Id)
	c.evs = append(c.evs, ev)
	return nil
}

func (c *collector) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}

// start runs a component with handler, on a loopback port, registering
// nowhere, with its state in dir ("" for a fresh folder); it is closed when
// the test ends.
func start(t testing.TB, id, dir string, handler component.Option) *component.Component {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	// The data plane's behaviour is tested here, its authentication in
	// auth_test.go.
	c, err := component.New(component.Config{ID: id, StateDir: dir}, component.Info{Name: id}, handler, component.WithInsecureDataPlane())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close %s: %v", id, err)
		}
	})
	return c
}

func dial(t testing.TB, c *component.Component) *grpc.ClientConn {
	t.Helper()
	conn, err := component.Dial(c.DataAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// relayByHand moves the events of one StreamEvents call through the
// processor into the sink, as flowctl's relay does: a goroutine per hop
// and no buffer of its own, so the sink's pace holds back the source. It
// returns the sink's answer once the source's stream ended.
func relayByHand(ctx context.Context, t testing.TB, src, proc, sink *component.Component, req *flowctlv1.StreamRequest) (*flowctlv1.ConsumeResponse, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := flowctlv1.NewSourceServiceClient(dial(t, src)).StreamEvents(ctx, req)
	if err != nil {
		return nil, err
	}
	processing, err := flowctlv1.NewProcessorServiceClient(dial(t, proc)).Process(ctx)
	if err != nil {
		return nil, err
	}
	consuming, err := flowctlv1.NewConsumerServiceClient(dial(t, sink)).Consume(ctx)
	if err != nil {
		return nil, err
	}
	errs := make(chan error, 2)
	go func() {
		for {
			ev, err := events.Recv()
			if errors.Is(err, io.EOF) {
				errs <- processing.CloseSend()
				return
			}
			if err == nil {
				err = processing.Send(ev)
			}
			if err != nil {
				cancel()
				errs <- fmt.Errorf("source → processor: %w", err)
				return
			}
		}
	}()
	go func() {
		for {
			ev, err := processing.Recv()
			if errors.Is(err, io.EOF) {
				errs <- nil
				return
			}
			if err == nil {
				err = consuming.Send(ev)
			}
			if err != nil {
				cancel()
				errs <- fmt.Errorf("processor → sink: %w", err)
				return
			}
		}
	}()
	for range 2 {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	return consuming.CloseAndRecv()
}

func TestSourceProcessorSinkDeliverEveryEventOnceAndInOrder(t *testing.T) {
	const n = 10_000
	src := start(t, "counter", "", component.WithSource(counting("counter", n, 16)))
	proc := start(t, "tag", "", component.WithProcessor(passThrough))
	sink := &collector{}
	snk := start(t, "collect", "", component.WithSink(sink))

	resp, err := relayByHand(context.Background(), t, src, proc, snk, &flowctlv1.StreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.EventsConsumed != n || resp.EventsFailed != 0 {
		t.Fatalf("consume response: %v, want %d consumed, none failed", resp, n)
	}
	got := sink.got()
	if len(got) != n {
		t.Fatalf("sink got %d events, want %d", len(got), n)
	}
	for i, id := range got {
		if want := fmt.Sprintf("counter-%d", i+1); id != want {
			t.Fatalf("event %d is %s, want %s (lost, doubled or out of order)", i, id, want)
		}
	}
	last := sink.evs[n-1]
	if last.Metadata[component.ResumeTokenKey] != strconv.Itoa(n) || last.Metadata["processed"] != "yes" ||
		last.SourceComponentId != "counter" || last.Timestamp == nil {
		t.Fatalf("last event lacks what the SDK and the processor add: %v", last)
	}
	if st := src.Stats(); st.EventsOut != n {
		t.Errorf("source stats %+v, want %d out", st, n)
	}
	if st := proc.Stats(); st.EventsIn != n || st.EventsOut != n {
		t.Errorf("processor stats %+v, want %d in and out", st, n)
	}
	if st := snk.Stats(); st.EventsIn != n {
		t.Errorf("sink stats %+v, want %d in", st, n)
	}
}

// firstIDs reads up to n events of a StreamEvents call.
func firstIDs(t *testing.T, c *component.Component, req *flowctlv1.StreamRequest, n int) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := flowctlv1.NewSourceServiceClient(dial(t, c)).StreamEvents(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < n {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.Id)
	}
	return ids
}

func TestSourceResumesAfterTheSavedPositionAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	src := start(t, "counter", dir, component.WithSource(counting("counter", 100, 0)))
	if got := firstIDs(t, src, &flowctlv1.StreamRequest{}, 40); len(got) != 40 || got[39] != "counter-40" {
		t.Fatalf("first pass: %v", got)
	}
	client := flowctlv1.NewSourceServiceClient(dial(t, src))
	// A consumer commits what it delivered.
	if _, err := client.SaveState(context.Background(), &flowctlv1.SaveStateRequest{
		State: map[string]string{component.ResumeTokenKey: "40", "note": "delivered"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The component restarts with the same state folder.
	again := start(t, "counter", dir, component.WithSource(counting("counter", 100, 0)))
	state, err := flowctlv1.NewSourceServiceClient(dial(t, again)).GetState(context.Background(), &flowctlv1.StateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if state.ResumeToken != "40" || state.State["note"] != "delivered" || state.LastUpdatedUnix == 0 {
		t.Fatalf("GetState after restart: %v", state)
	}
	for _, tc := range []struct {
		name  string
		req   *flowctlv1.StreamRequest
		first string
	}{
		{"resume from the saved position", &flowctlv1.StreamRequest{Resume: true}, "counter-41"},
		{"an explicit resume token wins", &flowctlv1.StreamRequest{Resume: true, ResumeToken: "90"}, "counter-91"},
		{"no resume starts over", &flowctlv1.StreamRequest{}, "counter-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := firstIDs(t, again, tc.req, 1)
			if len(got) != 1 || got[0] != tc.first {
				t.Fatalf("first event %v, want %s", got, tc.first)
			}
		})
	}
	if got := firstIDs(t, again, &flowctlv1.StreamRequest{ResumeToken: "100"}, 1); len(got) != 0 {
		t.Fatalf("after the last position: %v, want the stream to end", got)
	}
	stream, err := flowctlv1.NewSourceServiceClient(dial(t, again)).StreamEvents(context.Background(), &flowctlv1.StreamRequest{ResumeToken: "x"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad resume token: %v, want InvalidArgument", err)
	}
}

// gatedSink consumes one event per token taken from gate.
type gatedSink struct{ gate chan struct{} }

func (g gatedSink) Consume(ctx context.Context, _ *component.Event) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// settled polls f until it returns the same value several polls in a row
// and returns that value; it fails the test if f never settles.
func settled(t *testing.T, f func() int64) int64 {
	t.Helper()
	last, same := f(), 0
	for range 2000 {
		time.Sleep(10 * time.Millisecond)
		v := f()
		if v != last {
			last, same = v, 0
			continue
		}
		if same++; same == 10 {
			return v
		}
	}
	t.Fatalf("still changing after 2000 polls: %d", last)
	return 0
}

// reaches polls f until it returns want, and fails the test if it passes
// it or never gets there.
func reaches(t *testing.T, f func() int64, want int64) int64 {
	t.Helper()
	for range 6000 {
		switch v := f(); {
		case v == want:
			return v
		case v > want:
			t.Fatalf("got to %d, want %d", v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("stuck at %d, want %d", f(), want)
	return 0
}

func TestSlowSinkHoldsBackTheSourceWithoutBuffering(t *testing.T) {
	const eventSize = 1 << 10
	src := start(t, "endless", "", component.WithSource(counting("endless", 0, eventSize)))
	proc := start(t, "tag", "", component.WithProcessor(passThrough))
	sink := gatedSink{gate: make(chan struct{}, 1<<16)}
	snk := start(t, "slow", "", component.WithSink(sink))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := relayByHand(ctx, t, src, proc, snk, &flowctlv1.StreamRequest{})
		done <- err
	}()

	// What may be in flight: on each of the four hops (source → relay →
	// processor → relay → sink), a sender's write quota (64 KiB in
	// grpc-go) and the receiver's stream window; plus an event in hand per
	// goroutine. An endless source with anything unbounded in between
	// would pass it by far.
	const hops = 4
	bound := int64(hops*(64<<10+component.DataStreamWindow)/eventSize + 16)
	var released int64
	for _, release := range []int64{500, 2000, 500} {
		for range release {
			sink.gate <- struct{}{}
		}
		released += release
		consumed := reaches(t, func() int64 { return snk.Stats().EventsIn }, released)
		produced := settled(t, func() int64 { return src.Stats().EventsOut })
		t.Logf("released %d: produced %d, consumed %d, in flight %d (bound %d)", release, produced, consumed, produced-consumed, bound)
		if produced-consumed > bound {
			t.Fatalf("source ran %d events ahead of the sink, more than flow control allows (%d)", produced-consumed, bound)
		}
	}
	cancel()
	<-done // cut off: whatever it says
}

func TestProcessorOutputsInheritFromTheirInput(t *testing.T) {
	split := component.ProcessorFunc(func(_ context.Context, ev *component.Event) ([]*component.Event, error) {
		switch string(ev.Payload) {
		case "drop":
			return nil, nil
		case "split":
			return []*component.Event{{Payload: []byte("a")}, {Payload: []byte("b"), Id: "own"}}, nil
		case "fail":
			return nil, errors.New("cannot")
		}
		return []*component.Event{{Payload: ev.Payload}}, nil
	})
	proc := start(t, "split", "", component.WithProcessor(split))
	stream, err := flowctlv1.NewProcessorServiceClient(dial(t, proc)).Process(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []*component.Event{
		{Id: "e1", Payload: []byte("keep"), SourceComponentId: "src", Metadata: map[string]string{component.ResumeTokenKey: "1"}},
		{Id: "e2", Payload: []byte("drop")},
		{Id: "e3", Payload: []byte("split"), Metadata: map[string]string{component.ResumeTokenKey: "3"}},
		{Id: "e4", Payload: []byte("fail")},
	} {
		if err := stream.Send(in); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for {
		ev, err := stream.Recv()
		if err != nil {
			if !strings.Contains(fmt.Sprint(err), "process event e4: cannot") {
				t.Fatalf("the failing event should end the stream with its error, got %v", err)
			}
			break
		}
		got = append(got, fmt.Sprintf("%s/%s/%s/%s", ev.Id, ev.Payload, ev.SourceComponentId, ev.Metadata[component.ResumeTokenKey]))
	}
	want := []string{"e1/keep/src/1", "e3-0/a//3", "own/b//3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outputs %v, want %v", got, want)
	}
	if st := proc.Stats(); st.EventsIn != 4 || st.EventsOut != 3 || st.EventsFailed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSinkCountsFailuresAndFlushesBeforeAnswering(t *testing.T) {
	var mu sync.Mutex
	var buffered, durable []string
	sink := flushingSink{
		consume: func(ev *component.Event) error {
			if string(ev.Payload) == "bad" {
				return errors.New("unreadable")
			}
			mu.Lock()
			buffered = append(buffered, ev.Id)
			mu.Unlock()
			return nil
		},
		flush: func() {
			mu.Lock()
			durable = append(durable, buffered...)
			buffered = nil
			mu.Unlock()
		},
	}
	snk := start(t, "flushing", "", component.WithSink(sink))
	stream, err := flowctlv1.NewConsumerServiceClient(dial(t, snk)).Consume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*component.Event{{Id: "a"}, {Id: "b", Payload: []byte("bad")}, {Id: "c"}} {
		if err := stream.Send(ev); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.EventsConsumed != 2 || resp.EventsFailed != 1 || len(resp.Errors) != 1 || resp.Errors[0] != "event b: unreadable" {
		t.Fatalf("response %v", resp)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(durable) != "[a c]" || len(buffered) != 0 {
		t.Fatalf("durable %v, buffered %v: the answer came before the flush", durable, buffered)
	}
}

type flushingSink struct {
	consume func(*component.Event) error
	flush   func()
}

func (s flushingSink) Consume(_ context.Context, ev *component.Event) error { return s.consume(ev) }

func (s flushingSink) Flush(context.Context) error {
	s.flush()
	return nil
}

func TestCloseEndsOpenStreamsAndFlushesTheSink(t *testing.T) {
	src := start(t, "endless", "", component.WithSource(counting("endless", 0, 0)))
	flushed := make(chan struct{}, 1)
	snk := start(t, "sink", "", component.WithSink(flushingSink{
		consume: func(*component.Event) error { return nil },
		flush:   func() { flushed <- struct{}{} },
	}))
	events, err := flowctlv1.NewSourceServiceClient(dial(t, src)).StreamEvents(context.Background(), &flowctlv1.StreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Recv(); err != nil {
		t.Fatal(err)
	}
	consuming, err := flowctlv1.NewConsumerServiceClient(dial(t, snk)).Consume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := consuming.Send(&component.Event{Id: "x"}); err != nil {
		t.Fatal(err)
	}
	for snk.Stats().EventsIn == 0 {
		time.Sleep(time.Millisecond)
	}
	// Close returns with both streams open on the caller's side.
	for _, c := range []*component.Component{src, snk} {
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-flushed:
	default:
		t.Fatal("the sink was not flushed when its stream was cut")
	}
	for {
		if _, err := events.Recv(); err != nil {
			break
		}
	}
	if _, err := consuming.CloseAndRecv(); err == nil {
		t.Fatal("a stream cut by Close should not be acknowledged")
	}
}

func TestInfoAndHealthOverTheDataPlane(t *testing.T) {
	src := start(t, "counter", "", component.WithSource(counting("counter", 1, 0)))
	client := flowctlv1.NewSourceServiceClient(dial(t, src))
	info, err := client.GetInfo(context.Background(), &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Id != "counter" || info.Type != component.Source || info.Endpoint != src.DataAddr() {
		t.Fatalf("info %v (data addr %s)", info, src.DataAddr())
	}
	h, err := client.HealthCheck(context.Background(), &flowctlv1.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != flowctlv1.HealthStatus_HEALTH_STATUS_STARTING {
		t.Fatalf("before SetHealthy: %v", h)
	}
	src.SetHealthy(true)
	if h, err = client.HealthCheck(context.Background(), &flowctlv1.HealthCheckRequest{}); err != nil || h.Status != flowctlv1.HealthStatus_HEALTH_STATUS_HEALTHY || h.Metrics["events_out"] != "0" {
		t.Fatalf("after SetHealthy: %v %v", h, err)
	}
}

func TestNewRejectsMismatchedHandlers(t *testing.T) {
	if _, err := component.New(component.Config{}, component.Info{}, component.WithSource(counting("a", 1, 0)), component.WithSink(&collector{})); err == nil {
		t.Error("two handlers accepted")
	}
	if _, err := component.New(component.Config{}, component.Info{Type: component.Sink}, component.WithSource(counting("a", 1, 0))); err == nil {
		t.Error("a source handler accepted for a sink")
	}
}

// registry is a control plane that records registrations.
type registry struct {
	flowctlv1.UnimplementedControlPlaneServiceServer
	got chan *flowctlv1.RegisterRequest
}

func (r *registry) RegisterComponent(_ context.Context, req *flowctlv1.RegisterRequest) (*flowctlv1.RegisterResponse, error) {
	r.got <- req
	return &flowctlv1.RegisterResponse{ServiceId: "svc-1"}, nil
}

func (r *registry) Heartbeat(context.Context, *flowctlv1.HeartbeatRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (r *registry) UnregisterComponent(context.Context, *flowctlv1.UnregisterRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func TestRegistersItsDataEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := &registry{got: make(chan *flowctlv1.RegisterRequest, 1)}
	srv := grpc.NewServer()
	flowctlv1.RegisterControlPlaneServiceServer(srv, reg)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)

	c, err := component.New(component.Config{ID: "sink", Enabled: true, Endpoint: l.Addr().String(), Heartbeat: time.Hour},
		component.Info{Name: "sink"}, component.WithSink(&collector{}), component.WithInsecureDataPlane())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	req := <-reg.got
	if req.Component.Endpoint == "" || req.Component.Endpoint != c.DataAddr() || req.Component.Type != component.Sink {
		t.Fatalf("registered %v, data address %s", req.Component, c.DataAddr())
	}
}

// BenchmarkSourceProcessorSink moves b.N events of 1 KiB from a source
// through a processor into a sink, relayed by hand over loopback: the
// SDK's own cost, a floor for a relay's.
func BenchmarkSourceProcessorSink(b *testing.B) {
	src := start(b, "counter", "", component.WithSource(counting("counter", uint64(b.N), 1<<10)))
	proc := start(b, "tag", "", component.WithProcessor(passThrough))
	snk := start(b, "count", "", component.WithSink(component.SinkFunc(func(context.Context, *component.Event) error { return nil })))
	b.SetBytes(1 << 10)
	b.ResetTimer()
	resp, err := relayByHand(context.Background(), b, src, proc, snk, &flowctlv1.StreamRequest{})
	if err != nil {
		b.Fatal(err)
	}
	if resp.EventsConsumed != int64(b.N) {
		b.Fatalf("consumed %d of %d", resp.EventsConsumed, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
