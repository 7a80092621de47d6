// Package relay benchmarks the data plane: events of 1 KiB from a source
// through a processor into a sink, all three built with pkg/component and
// served in this process on loopback, moved two ways in the same run:
//
//   - through internal/relay, as `flowctl serve` moves them (its default
//     options: per-component queues, the ledger, acknowledged Consume
//     batches, positions saved in the source; the relay's data token on
//     every call, verified by the components);
//   - directly: a hand-written forwarder, StreamEvents → Process → Consume,
//     one goroutine per hop, with no queue, no ledger and no batching —
//     the floor of any relay over the SDK.
//
// "auth" compares the relay with data-plane authentication on (as serve
// runs it) and off (components that accept any caller), in the same run.
//
// Each event's timestamp is set by the source as it emits it (the SDK's
// Emit); the sink takes the difference with its arrival time, so latency is
// end to end, queues and flow-control windows included.
//
//	go test -run '^$' -bench 'BenchmarkRelay$' -benchtime 3x ./bench/relay/
//	go test -run '^$' -bench 'BenchmarkRelay/auth' -benchtime 4x ./bench/relay/
//	go test -run '^$' -bench 'BenchmarkRelay/path=relay' -cpuprofile cpu.out ./bench/relay/   # one path, b.N events
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// eventSize is the payload of each event.
const eventSize = 1 << 10

// roundEvents is how many events a round of BenchmarkRelay moves each way;
// pacedEvents at pacedRate events per second in the paced runs.
const (
	roundEvents = 200_000
	pacedEvents = 50_000
	pacedRate   = 10_000
)

// result is one run's figures.
type result struct {
	events   int
	elapsed  time.Duration
	p50, p99 time.Duration
	// cpu is the CPU time of this process (components, relay or
	// forwarder, gRPC, the runtime) and syscalls the read and write
	// system calls it made, during the run.
	cpu      time.Duration
	syscalls int64
}

// cpuPerEvent is the CPU time per event, in microseconds: what the run
// costs whatever the share of the machine it got.
func (r result) cpuPerEvent() float64 { return float64(r.cpu.Microseconds()) / float64(r.events) }

func (r result) syscallsPerEvent() float64 { return float64(r.syscalls) / float64(r.events) }

// usage is this process's CPU time and read/write system calls so far.
func usage() (time.Duration, int64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	var calls int64
	if b, err := os.ReadFile("/proc/self/io"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ": "); ok && (k == "syscr" || k == "syscw") {
				n, _ := strconv.ParseInt(v, 10, 64)
				calls += n
			}
		}
	}
	return cpu, calls
}

func (r result) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

// latencySink records each event's age at arrival and says when it has n.
type latencySink struct {
	ages []time.Duration // the SDK serialises Consume calls
	n    int
	done chan struct{}
}

func newLatencySink(n int) *latencySink {
	return &latencySink{ages: make([]time.Duration, 0, n), n: n, done: make(chan struct{})}
}

func (s *latencySink) Consume(_ context.Context, ev *component.Event) error {
	s.ages = append(s.ages, time.Since(ev.GetTimestamp().AsTime()))
	if len(s.ages) == s.n {
		close(s.done)
	}
	return nil
}

// flow is a source, a processor and a sink, running.
type flow struct {
	src, proc, snk *component.Component
	sink           *latencySink
}

// startFlow starts the three components for n events of eventSize bytes,
// emitted as fast as the flow takes them, or, when rate > 0, at rate
// events per second. With a key, the components verify data tokens of
// that key; without, they accept any caller.
func startFlow(b testing.TB, n int, rate float64, key *tokens.DataKey) *flow {
	b.Helper()
	payload := make([]byte, eventSize)
	for i := range payload {
		payload[i] = 'x'
	}
	src := component.SourceFunc(func(ctx context.Context, req component.StreamRequest, emit component.Emit) error {
		after, _ := strconv.Atoi(req.After)
		start := time.Now()
		for seq := after + 1; seq <= n; seq++ {
			if rate > 0 {
				if wait := time.Until(start.Add(time.Duration(float64(seq-after-1) / rate * float64(time.Second)))); wait > 0 {
					time.Sleep(wait)
				}
			}
			pos := strconv.Itoa(seq)
			if err := emit(&component.Event{Id: "bench-" + pos, Type: "bench", Payload: payload}, pos); err != nil {
				return err
			}
		}
		return nil
	})
	proc := component.ProcessorFunc(func(_ context.Context, ev *component.Event) ([]*component.Event, error) {
		return []*component.Event{ev}, nil
	})
	f := &flow{sink: newLatencySink(n)}
	f.src = start(b, "source", component.WithSource(src), key)
	f.proc = start(b, "processor", component.WithProcessor(proc), key)
	f.snk = start(b, "sink", component.WithSink(f.sink), key)
	return f
}

func start(b testing.TB, id string, handler component.Option, key *tokens.DataKey) *component.Component {
	b.Helper()
	auth := component.WithInsecureDataPlane()
	if key != nil {
		auth = component.WithDataVerifier(component.NewDataVerifier(key.Public()))
	}
	c, err := component.New(component.Config{ID: id, StateDir: b.TempDir()}, component.Info{Name: id}, handler, auth)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

func (f *flow) close(b testing.TB) {
	b.Helper()
	for _, c := range []*component.Component{f.src, f.proc, f.snk} {
		if err := c.Close(context.Background()); err != nil {
			b.Errorf("close: %v", err)
		}
	}
}

// wait returns the figures once the sink has every event.
func (f *flow) wait(b testing.TB, started time.Time, cpu0 time.Duration, calls0 int64, errc <-chan error) result {
	b.Helper()
	timeout := time.After(5 * time.Minute)
wait:
	for {
		select {
		case <-f.sink.done:
			break wait
		case err := <-errc:
			if err != nil {
				b.Fatalf("flow failed: %v", err)
			}
		case <-timeout:
			b.Fatalf("timed out: %d of %d events at the sink", len(f.sink.ages), f.sink.n)
		}
	}
	r := result{events: f.sink.n, elapsed: time.Since(started)}
	cpu, calls := usage()
	r.cpu, r.syscalls = cpu-cpu0, calls-calls0
	ages := slices.Clone(f.sink.ages)
	slices.Sort(ages)
	r.p50, r.p99 = ages[len(ages)/2], ages[len(ages)*99/100]
	return r
}

// viaRelay moves n events through internal/relay, with data-plane
// authentication, as serve does.
func viaRelay(b testing.TB, n int, rate float64) result { return relayFlow(b, n, rate, true) }

// viaOpenRelay moves n events through internal/relay, to components that
// accept any caller.
func viaOpenRelay(b testing.TB, n int, rate float64) result { return relayFlow(b, n, rate, false) }

func relayFlow(b testing.TB, n int, rate float64, auth bool) result {
	var opts relay.Options
	var key *tokens.DataKey
	if auth {
		var err error
		if key, err = tokens.NewDataKey(); err != nil {
			b.Fatal(err)
		}
		src := tokens.NewDataIssuer(key, "").Tokens(contract.DataPlaneRelaySubject)
		opts.Token = func(context.Context) (string, error) { return src.Token() }
	}
	f := startFlow(b, n, rate, key)
	defer f.close(b)
	nodes := []relay.Node{
		{Address: "source.source", ID: "source", Kind: relay.Source, Dial: f.src.DataAddr()},
		{Address: "processor.processor", ID: "processor", Kind: relay.Processor, Dial: f.proc.DataAddr(), Inputs: []string{"source.source"}},
		{Address: "sink.sink", ID: "sink", Kind: relay.Sink, Dial: f.snk.DataAddr(), Inputs: []string{"processor.processor"}},
	}
	opts.Topology = func(context.Context) ([]relay.Node, error) { return nodes, nil }
	r := relay.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	cpu0, calls0 := usage()
	started := time.Now()
	go func() { errc <- r.Run(ctx) }()
	res := f.wait(b, started, cpu0, calls0, errc)
	cancel()
	<-errc
	return res
}

// direct moves n events with a forwarder of two goroutines and nothing
// else: the SDK's own cost.
func direct(b testing.TB, n int, rate float64) result {
	f := startFlow(b, n, rate, nil)
	defer f.close(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc, err := component.Dial(f.src.DataAddr())
	if err != nil {
		b.Fatal(err)
	}
	pc, err := component.Dial(f.proc.DataAddr())
	if err != nil {
		b.Fatal(err)
	}
	kc, err := component.Dial(f.snk.DataAddr())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _, _, _ = sc.Close(), pc.Close(), kc.Close() }()
	errc := make(chan error, 2)
	cpu0, calls0 := usage()
	started := time.Now()
	events, err := flowctlv1.NewSourceServiceClient(sc).StreamEvents(ctx, &flowctlv1.StreamRequest{})
	if err != nil {
		b.Fatal(err)
	}
	processing, err := flowctlv1.NewProcessorServiceClient(pc).Process(ctx)
	if err != nil {
		b.Fatal(err)
	}
	consuming, err := flowctlv1.NewConsumerServiceClient(kc).Consume(ctx)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			ev, err := events.Recv()
			if errors.Is(err, io.EOF) {
				errc <- processing.CloseSend()
				return
			}
			if err == nil {
				err = processing.Send(ev)
			}
			if err != nil {
				errc <- fmt.Errorf("source → processor: %w", err)
				return
			}
		}
	}()
	go func() {
		for {
			ev, err := processing.Recv()
			if errors.Is(err, io.EOF) {
				_, err = consuming.CloseAndRecv()
				errc <- err
				return
			}
			if err == nil {
				err = consuming.Send(ev)
			}
			if err != nil {
				errc <- fmt.Errorf("processor → sink: %w", err)
				return
			}
		}
	}()
	res := f.wait(b, started, cpu0, calls0, errc)
	cancel()
	return res
}

// BenchmarkRelay: "both" runs a round of roundEvents each way per
// iteration (alternating which goes first) and reports both rates, their
// ratio and the latencies; "path=…" moves b.N events one way, for
// profiles.
func BenchmarkRelay(b *testing.B) {
	b.Run("both", func(b *testing.B) {
		var rel, dir []result
		i := 0
		for b.Loop() {
			if i%2 == 0 {
				dir = append(dir, direct(b, roundEvents, 0))
				rel = append(rel, viaRelay(b, roundEvents, 0))
			} else {
				rel = append(rel, viaRelay(b, roundEvents, 0))
				dir = append(dir, direct(b, roundEvents, 0))
			}
			i++
		}
		r, d := median(rel), median(dir)
		b.ReportMetric(r.rate(), "relay-events/s")
		b.ReportMetric(d.rate(), "direct-events/s")
		b.ReportMetric(r.rate()/d.rate(), "relay/direct")
		b.ReportMetric(r.cpuPerEvent(), "relay-cpu-us/event")
		b.ReportMetric(d.cpuPerEvent(), "direct-cpu-us/event")
		b.ReportMetric(r.syscallsPerEvent(), "relay-syscalls/event")
		b.ReportMetric(d.syscallsPerEvent(), "direct-syscalls/event")
		b.ReportMetric(float64(r.p99.Microseconds())/1000, "relay-p99-ms")
		b.ReportMetric(float64(d.p99.Microseconds())/1000, "direct-p99-ms")
		b.ReportMetric(float64(r.p50.Microseconds())/1000, "relay-p50-ms")
		b.ReportMetric(float64(d.p50.Microseconds())/1000, "direct-p50-ms")
		for k := range rel {
			b.Logf("round %d: relay %.0f events/s (p50 %s, p99 %s, %.1f µs CPU and %.2f syscalls per event), direct %.0f events/s (p50 %s, p99 %s, %.1f µs, %.2f)", k+1,
				rel[k].rate(), rel[k].p50, rel[k].p99, rel[k].cpuPerEvent(), rel[k].syscallsPerEvent(),
				dir[k].rate(), dir[k].p50, dir[k].p99, dir[k].cpuPerEvent(), dir[k].syscallsPerEvent())
		}
	})
	// Data-plane authentication on vs off, alternating which goes first.
	b.Run("auth", func(b *testing.B) {
		var on, off []result
		i := 0
		for b.Loop() {
			if i%2 == 0 {
				off = append(off, viaOpenRelay(b, roundEvents, 0))
				on = append(on, viaRelay(b, roundEvents, 0))
			} else {
				on = append(on, viaRelay(b, roundEvents, 0))
				off = append(off, viaOpenRelay(b, roundEvents, 0))
			}
			i++
		}
		a, o := median(on), median(off)
		b.ReportMetric(a.rate(), "auth-on-events/s")
		b.ReportMetric(o.rate(), "auth-off-events/s")
		b.ReportMetric(a.rate()/o.rate(), "on/off")
		b.ReportMetric(a.cpuPerEvent(), "auth-on-cpu-us/event")
		b.ReportMetric(o.cpuPerEvent(), "auth-off-cpu-us/event")
		for k := range on {
			b.Logf("round %d: auth on %.0f events/s (%.1f µs CPU per event), off %.0f events/s (%.1f µs)", k+1,
				on[k].rate(), on[k].cpuPerEvent(), off[k].rate(), off[k].cpuPerEvent())
		}
	})
	// Latency below saturation: pacedRate events per second, where the
	// queues and windows stay nearly empty.
	b.Run("paced", func(b *testing.B) {
		var rel, dir []result
		for b.Loop() {
			dir = append(dir, direct(b, pacedEvents, pacedRate))
			rel = append(rel, viaRelay(b, pacedEvents, pacedRate))
		}
		r, d := median(rel), median(dir)
		b.ReportMetric(float64(r.p50.Microseconds())/1000, "relay-p50-ms")
		b.ReportMetric(float64(r.p99.Microseconds())/1000, "relay-p99-ms")
		b.ReportMetric(float64(d.p50.Microseconds())/1000, "direct-p50-ms")
		b.ReportMetric(float64(d.p99.Microseconds())/1000, "direct-p99-ms")
		b.ReportMetric(r.cpuPerEvent(), "relay-cpu-us/event")
		b.ReportMetric(d.cpuPerEvent(), "direct-cpu-us/event")
	})
	for _, path := range []struct {
		name string
		run  func(testing.TB, int, float64) result
	}{{"relay", viaRelay}, {"relay-open", viaOpenRelay}, {"direct", direct}} {
		b.Run("path="+path.name, func(b *testing.B) {
			b.SetBytes(eventSize)
			r := path.run(b, max(b.N, 1000), 0)
			b.ReportMetric(r.rate(), "events/s")
			b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(r.cpuPerEvent(), "cpu-us/event")
			b.ReportMetric(r.syscallsPerEvent(), "syscalls/event")
		})
	}
}

// median is the result of median rate.
func median(rs []result) result {
	s := slices.SortedFunc(slices.Values(rs), func(a, b result) int {
		switch {
		case a.rate() < b.rate():
			return -1
		case a.rate() > b.rate():
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// TestSmoke moves a few events both ways, so that the benchmark keeps
// working as the relay and the SDK change.
func TestSmoke(t *testing.T) {
	for _, run := range []func(testing.TB, int, float64) result{viaRelay, viaOpenRelay, direct} {
		if r := run(t, 3000, 0); r.events != 3000 || r.p99 <= 0 {
			t.Errorf("%+v", r)
		}
	}
}
