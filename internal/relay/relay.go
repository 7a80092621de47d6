// Package relay moves events between a pipeline's SDK components along the
// DAG, inside `flowctl serve`: it calls each source's
// SourceService.StreamEvents, pipes what comes into the
// ProcessorService.Process stream of every processor that lists the
// source, and so on down, into ConsumerService.Consume of every sink —
// fanning out to every downstream and merging fan-in.
//
// # Flow control
//
// Each component has one bounded input queue (Options.Buffer events); a
// queue that is full blocks whoever feeds it, and gRPC flow control carries
// that back to the source: memory stays bounded whatever the rates.
//
// # Delivery
//
// At least once. The relay numbers each source's events and remembers
// their positions (the resume_token of their metadata, which SDK
// processors pass on). A sink's Consume stream is closed and reopened every
// Options.CommitEvery events or Options.CommitInterval: its
// ConsumeResponse acknowledges what it received, and once every sink
// downstream of a source has acknowledged an event, the relay saves its
// position in the source (SaveState). When any stream breaks (a component
// restarted or was replaced), the relay stops the whole flow, waits a
// moment, and starts again from each source's saved position: events after
// it are delivered again, which a de-duplicating sink absorbs.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Kinds of node.
const (
	Source    = "source"
	Processor = "processor"
	Sink      = "sink"
)

// resumeTokenKey is the event metadata key of a source's position (the
// SDK's component.ResumeTokenKey).
const resumeTokenKey = "resume_token"

// Node is one SDK component in the flow.
type Node struct {
	Address string // KIND.ID
	ID      string // the id its events carry as source_component_id
	Kind    string // Source, Processor or Sink
	Dial    string // host:port of its data-plane service
	Inputs  []string
}

// Topology returns the nodes that take part now.
type Topology func(ctx context.Context) ([]Node, error)

// Options configure a Relay.
type Options struct {
	Topology Topology
	// Buffer is each component's input queue, in events (default 256).
	Buffer int
	// CommitEvery and CommitInterval bound how many events, and how long,
	// a sink's Consume stream runs before it is acknowledged (defaults
	// 1000 and 500ms).
	CommitEvery    int
	CommitInterval time.Duration
	// Poll is how often the topology is checked for changes (default 1s).
	Poll time.Duration
	Log  *slog.Logger
}

// Relay runs the flow.
type Relay struct {
	opts  Options
	mu    sync.Mutex
	edges map[string]*EdgeStats // "from->to"
	nodes map[string]*NodeStats
}

// EdgeStats counts what crossed one edge.
type EdgeStats struct {
	From, To string
	Events   atomic.Uint64
	Bytes    atomic.Uint64
	// LastAt is the UnixNano time of the last event.
	LastAt atomic.Int64
}

// NodeStats counts a node's stream failures and acknowledged events.
type NodeStats struct {
	Errors atomic.Uint64
	Acked  atomic.Uint64
}

// New returns a relay; Run runs it.
func New(opts Options) *Relay {
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	if opts.CommitEvery <= 0 {
		opts.CommitEvery = 1000
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = 500 * time.Millisecond
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Relay{opts: opts, edges: map[string]*EdgeStats{}, nodes: map[string]*NodeStats{}}
}

// Edge is a snapshot of one edge's counters.
type Edge struct {
	From, To string
	Events   uint64
	Bytes    uint64
	LastAt   time.Time
}

// Edges returns the counters of every edge seen, sorted.
func (r *Relay) Edges() []Edge {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Edge, 0, len(r.edges))
	for _, e := range r.edges {
		ed := Edge{From: e.From, To: e.To, Events: e.Events.Load(), Bytes: e.Bytes.Load()}
		if t := e.LastAt.Load(); t > 0 {
			ed.LastAt = time.Unix(0, t)
		}
		out = append(out, ed)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From+out[i].To < out[j].From+out[j].To })
	return out
}

// NodeErrors returns each node's stream failures.
func (r *Relay) NodeErrors() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]uint64{}
	for a, n := range r.nodes {
		out[a] = n.Errors.Load()
	}
	return out
}

func (r *Relay) edge(from, to string) *EdgeStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := from + "->" + to
	e := r.edges[k]
	if e == nil {
		e = &EdgeStats{From: from, To: to}
		r.edges[k] = e
	}
	return e
}

func (r *Relay) node(addr string) *NodeStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.nodes[addr]
	if n == nil {
		n = &NodeStats{}
		r.nodes[addr] = n
	}
	return n
}

// Run moves events until ctx ends: it (re)starts the flow whenever the
// topology changes or a stream breaks.
func (r *Relay) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		nodes, err := r.opts.Topology(ctx)
		if err != nil {
			r.opts.Log.Debug("relay: topology", "err", err)
		}
		nodes = connected(nodes)
		if len(nodes) == 0 {
			if !sleep(ctx, r.opts.Poll) {
				return nil
			}
			continue
		}
		started := time.Now()
		err = r.session(ctx, nodes)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.opts.Log.Info("relay: flow interrupted; resuming from the saved positions", "err", err)
		}
		if time.Since(started) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	return nil
}

// connected keeps the nodes that take part in an edge between SDK
// components, with their inputs restricted to such nodes.
func connected(nodes []Node) []Node {
	by := map[string]*Node{}
	for i := range nodes {
		by[nodes[i].Address] = &nodes[i]
	}
	used := map[string]bool{}
	for _, n := range nodes {
		for _, in := range n.Inputs {
			if by[in] != nil {
				used[in], used[n.Address] = true, true
			}
		}
	}
	var out []Node
	for _, n := range nodes {
		if !used[n.Address] {
			continue
		}
		n.Inputs = slices.DeleteFunc(slices.Clone(n.Inputs), func(in string) bool { return by[in] == nil })
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// envelope is an event on its way, with the source it came from.
type envelope struct {
	ev  *flowctlv1.Event
	src string // source address
	seq uint64
}

// session runs one flow over nodes until a stream breaks, the topology
// changes, or ctx ends.
func (r *Relay) session(parent context.Context, nodes []Node) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	fail := func(addr string, err error) {
		if ctx.Err() == nil {
			r.node(addr).Errors.Add(1)
		}
		cancel(fmt.Errorf("%s: %w", addr, err))
	}

	by := map[string]Node{}
	inbox := map[string]chan envelope{}
	down := map[string][]string{}
	for _, n := range nodes {
		by[n.Address] = n
		if n.Kind != Source {
			inbox[n.Address] = make(chan envelope, r.opts.Buffer)
		}
		for _, in := range n.Inputs {
			down[in] = append(down[in], n.Address)
		}
	}
	// Which sinks each source reaches: its positions are saved once all of
	// them have acknowledged.
	reach := map[string][]string{}
	for _, n := range nodes {
		if n.Kind == Source {
			reach[n.Address] = sinksBelow(n.Address, by, down)
		}
	}
	conns := map[string]*grpc.ClientConn{}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for _, n := range nodes {
		c, err := grpc.NewClient(n.Dial, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			return fmt.Errorf("dial %s at %s: %w", n.Address, n.Dial, err)
		}
		conns[n.Address] = c
	}
	led := newLedger(reach)

	// forward hands ev to every downstream of from.
	forward := func(from string, env envelope) bool {
		size := uint64(proto.Size(env.ev))
		for _, d := range down[from] {
			select {
			case inbox[d] <- env:
				e := r.edge(from, d)
				e.Events.Add(1)
				e.Bytes.Add(size)
				e.LastAt.Store(time.Now().UnixNano())
			case <-ctx.Done():
				return false
			}
		}
		return true
	}

	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		switch n.Kind {
		case Source:
			go func() {
				defer wg.Done()
				if err := r.runSource(ctx, n, conns[n.Address], led, forward); err != nil {
					fail(n.Address, err)
				}
			}()
		case Processor:
			go func() {
				defer wg.Done()
				if err := r.runProcessor(ctx, n, conns[n.Address], inbox[n.Address], by, forward); err != nil {
					fail(n.Address, err)
				}
			}()
		default:
			go func() {
				defer wg.Done()
				if err := r.runSink(ctx, n, conns[n.Address], inbox[n.Address], by, led, conns); err != nil {
					fail(n.Address, err)
				}
			}()
		}
	}
	// Watch the topology: a change (a replaced component, a new one) means
	// a new flow.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.opts.Poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				now, err := r.opts.Topology(ctx)
				if err == nil && !sameTopology(nodes, connected(now)) {
					cancel(errors.New("the pipeline's components changed"))
					return
				}
			}
		}
	}()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return parent.Err()
}

func sameTopology(a, b []Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Address != b[i].Address || a[i].Dial != b[i].Dial || a[i].Kind != b[i].Kind || !slices.Equal(a[i].Inputs, b[i].Inputs) {
			return false
		}
	}
	return true
}

func sinksBelow(addr string, by map[string]Node, down map[string][]string) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(string)
	walk = func(a string) {
		for _, d := range down[a] {
			if seen[d] {
				continue
			}
			seen[d] = true
			if by[d].Kind == Sink {
				out = append(out, d)
			}
			walk(d)
		}
	}
	walk(addr)
	sort.Strings(out)
	return out
}

// runSource streams a source's events from its saved position.
func (r *Relay) runSource(ctx context.Context, n Node, conn *grpc.ClientConn, led *ledger, forward func(string, envelope) bool) error {
	c := flowctlv1.NewSourceServiceClient(conn)
	stream, err := c.StreamEvents(ctx, &flowctlv1.StreamRequest{Resume: true}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("stream events: %w", err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			r.opts.Log.Info("relay: source finished its stream", "source", n.Address)
			return nil // the rest of the flow drains what it sent
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stream events: %w", err)
		}
		if ev.SourceComponentId == "" {
			ev.SourceComponentId = n.ID
		}
		seq := led.sent(n.Address, ev.GetMetadata()[resumeTokenKey])
		if !forward(n.Address, envelope{ev: ev, src: n.Address, seq: seq}) {
			return nil
		}
	}
}

// runProcessor feeds a processor's Process stream and forwards what comes
// out.
func (r *Relay) runProcessor(ctx context.Context, n Node, conn *grpc.ClientConn, in <-chan envelope, by map[string]Node, forward func(string, envelope) bool) error {
	c := flowctlv1.NewProcessorServiceClient(conn)
	stream, err := c.Process(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				errc <- nil
				return
			case env := <-in:
				if err := stream.Send(env.ev); err != nil {
					errc <- fmt.Errorf("process: send: %w", err)
					return
				}
			}
		}
	}()
	for {
		out, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			select {
			case serr := <-errc:
				if serr != nil {
					return serr
				}
			default:
			}
			return fmt.Errorf("process: %w", err)
		}
		if !forward(n.Address, envelope{ev: out}) {
			return nil
		}
	}
}

// runSink feeds a sink's Consume stream in acknowledged batches and saves
// the sources' positions as they are acknowledged.
func (r *Relay) runSink(ctx context.Context, n Node, conn *grpc.ClientConn, in <-chan envelope, by map[string]Node, led *ledger, conns map[string]*grpc.ClientConn) error {
	c := flowctlv1.NewConsumerServiceClient(conn)
	srcByID := map[string]string{}
	for a, nd := range by {
		if nd.Kind == Source {
			srcByID[nd.ID] = a
		}
	}
	for ctx.Err() == nil {
		stream, err := c.Consume(ctx, grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		batch := map[string]string{} // source address -> last position in the batch
		count := 0
		deadline := time.NewTimer(r.opts.CommitInterval)
	feed:
		for count < r.opts.CommitEvery {
			select {
			case <-ctx.Done():
				deadline.Stop()
				return nil
			case <-deadline.C:
				break feed
			case env := <-in:
				if err := stream.Send(env.ev); err != nil {
					deadline.Stop()
					return fmt.Errorf("consume: send: %w", err)
				}
				count++
				if pos := env.ev.GetMetadata()[resumeTokenKey]; pos != "" {
					if src := srcByID[env.ev.GetSourceComponentId()]; src != "" {
						batch[src] = pos
					}
				}
			}
		}
		deadline.Stop()
		resp, err := stream.CloseAndRecv()
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		if resp.GetEventsFailed() > 0 {
			return fmt.Errorf("consume: the sink failed %d events: %v", resp.GetEventsFailed(), resp.GetErrors())
		}
		r.node(n.Address).Acked.Add(uint64(count))
		for _, src := range slices.Sorted(maps.Keys(batch)) {
			if pos, ok := led.acked(src, n.Address, batch[src]); ok {
				sc := flowctlv1.NewSourceServiceClient(conns[src])
				if _, err := sc.SaveState(ctx, &flowctlv1.SaveStateRequest{State: map[string]string{resumeTokenKey: pos}}); err != nil && ctx.Err() == nil {
					r.opts.Log.Warn("relay: save a source's position", "source", src, "err", err)
				}
			}
		}
	}
	return nil
}
