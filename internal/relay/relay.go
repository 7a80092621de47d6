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
// queue that is full blocks whoever feeds it, and gRPC flow control (static
// windows, as the SDK's) carries that back to the source: memory stays
// bounded whatever the rates.
//
// # Delivery
//
// At least once. The relay numbers each source's events and remembers
// their positions (the resume_token of their metadata, which SDK
// processors pass on). A sink's Consume stream is closed and reopened every
// Options.CommitEvery events or Options.CommitInterval: its
// ConsumeResponse acknowledges what it received, and once every sink
// downstream of a source has acknowledged an event, the relay saves its
// position in the source (SaveState, off the events' path, at most every
// saveGap). When any stream breaks (a component restarted or was
// replaced), the relay stops the whole flow, waits a moment, and starts
// again from each source's saved position: events after it are delivered
// again, which a de-duplicating sink absorbs.
//
// # Authentication
//
// When Options.Token is set, every call the relay makes to a component
// (StreamEvents, Process, Consume, SaveState) carries the relay's data
// token as bearer metadata; the SDK's components refuse calls without one
// (docs/data-plane-auth.md). The token is asked for once per call, that
// is once per stream or batch, never per event.
//
// # Cost per event
//
// Events move as the bytes that came off the wire (wire.go): the relay
// reads an event's source id and position from them and never decodes nor
// re-encodes it. Per event and edge it does a channel send and two atomic
// additions; no lock but the ledger's (once per source event), no clock
// read (an edge's LastAt is stamped by the topology poll).
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

	"github.com/flowctl/flowctl/pkg/component"
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
	// Token returns the relay's data token (subject "relay"), sent with
	// every call to a component; nil sends none.
	Token func(ctx context.Context) (string, error)
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
	// LastAt is the UnixNano time of the last event, to within
	// Options.Poll.
	LastAt atomic.Int64

	stamped uint64 // Events when LastAt was last set
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

// Flow-control windows and socket buffers of the relay's connections. The
// windows are static, as the SDK's are: what a component sends ahead of
// the relay stays within streamWindow per stream, whatever the rates. The
// buffers let one write or read system call carry many events.
const (
	streamWindow = 256 << 10
	connWindow   = 1 << 20
	socketBuffer = 128 << 10
)

// saveGap is the least time between two saves of the sources' positions.
const saveGap = 100 * time.Millisecond

// outlet is one edge out of a node: the downstream's queue and the edge's
// counters.
type outlet struct {
	to    chan []byte
	stats *EdgeStats
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
	inbox := map[string]chan []byte{}
	down := map[string][]string{}
	for _, n := range nodes {
		by[n.Address] = n
		if n.Kind != Source {
			inbox[n.Address] = make(chan []byte, r.opts.Buffer)
		}
		for _, in := range n.Inputs {
			down[in] = append(down[in], n.Address)
		}
	}
	outlets := map[string][]outlet{}
	var edges []*EdgeStats
	for from, tos := range down {
		for _, to := range tos {
			e := r.edge(from, to)
			outlets[from] = append(outlets[from], outlet{to: inbox[to], stats: e})
			edges = append(edges, e)
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
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.ForceCodecV2(codec{})),
		grpc.WithStaticStreamWindowSize(streamWindow),
		grpc.WithStaticConnWindowSize(connWindow),
		grpc.WithWriteBufferSize(socketBuffer),
		grpc.WithReadBufferSize(socketBuffer),
	}
	if r.opts.Token != nil {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(component.DataTokenCredentials(r.opts.Token)))
	}
	for _, n := range nodes {
		c, err := grpc.NewClient(n.Dial, dialOpts...)
		if err != nil {
			return fmt.Errorf("dial %s at %s: %w", n.Address, n.Dial, err)
		}
		conns[n.Address] = c
	}
	led := newLedger(reach)
	saves := newSaver(conns, r.opts.Log)

	// forward hands an event to every downstream of a node.
	forward := func(outs []outlet, b []byte) bool {
		for _, o := range outs {
			select {
			case o.to <- b:
			default:
				select {
				case o.to <- b:
				case <-ctx.Done():
					return false
				}
			}
			o.stats.Events.Add(1)
			o.stats.Bytes.Add(uint64(len(b)))
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
				if err := r.runSource(ctx, n, conns[n.Address], led, func(b []byte) bool { return forward(outlets[n.Address], b) }); err != nil {
					fail(n.Address, err)
				}
			}()
		case Processor:
			go func() {
				defer wg.Done()
				if err := r.runProcessor(ctx, conns[n.Address], inbox[n.Address], func(b []byte) bool { return forward(outlets[n.Address], b) }); err != nil {
					fail(n.Address, err)
				}
			}()
		default:
			go func() {
				defer wg.Done()
				if err := r.runSink(ctx, n, conns[n.Address], inbox[n.Address], by, led, saves); err != nil {
					fail(n.Address, err)
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		saves.run(ctx)
	}()
	// Watch the topology: a change (a replaced component, a new one) means
	// a new flow. The same tick stamps the edges that moved: no clock is
	// read per event.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stamp(edges)
		t := time.NewTicker(r.opts.Poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				stamp(edges)
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

// stamp sets LastAt of the edges whose count moved since the last stamp.
// One goroutine of one session stamps at a time.
func stamp(edges []*EdgeStats) {
	now := time.Now().UnixNano()
	for _, e := range edges {
		if n := e.Events.Load(); n != e.stamped {
			e.stamped = n
			e.LastAt.Store(now)
		}
	}
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
func (r *Relay) runSource(ctx context.Context, n Node, conn *grpc.ClientConn, led *ledger, forward func([]byte) bool) error {
	stream, err := conn.NewStream(ctx, &flowctlv1.SourceService_ServiceDesc.Streams[0],
		flowctlv1.SourceService_StreamEvents_FullMethodName, grpc.WaitForReady(true))
	if err == nil {
		err = stream.SendMsg(&flowctlv1.StreamRequest{Resume: true})
	}
	if err == nil {
		err = stream.CloseSend()
	}
	if err != nil {
		return fmt.Errorf("stream events: %w", err)
	}
	for {
		var f frame
		err := stream.RecvMsg(&f)
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
		ev, err := scanEvent(f.b)
		if err != nil {
			return fmt.Errorf("stream events: %w", err)
		}
		led.sent(n.Address, string(ev.position))
		if len(ev.source) == 0 {
			f.b = withSource(f.b, n.ID)
		}
		if !forward(f.b) {
			return nil
		}
	}
}

// runProcessor feeds a processor's Process stream and forwards what comes
// out.
func (r *Relay) runProcessor(ctx context.Context, conn *grpc.ClientConn, in <-chan []byte, forward func([]byte) bool) error {
	stream, err := conn.NewStream(ctx, &flowctlv1.ProcessorService_ServiceDesc.Streams[0],
		flowctlv1.ProcessorService_Process_FullMethodName, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		var f frame
		for {
			b, ok := receive(ctx, in)
			if !ok {
				errc <- nil
				return
			}
			f.b = b
			if err := stream.SendMsg(&f); err != nil {
				errc <- fmt.Errorf("process: send: %w", err)
				return
			}
		}
	}()
	for {
		var out frame
		err := stream.RecvMsg(&out)
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
		if !forward(out.b) {
			return nil
		}
	}
}

// receive takes the next event of in; false once ctx ends.
func receive(ctx context.Context, in <-chan []byte) ([]byte, bool) {
	select {
	case b := <-in:
		return b, true
	default:
	}
	select {
	case b := <-in:
		return b, true
	case <-ctx.Done():
		return nil, false
	}
}

// mark is the last position of a source's events in a sink's batch.
type mark struct {
	source   string
	position []byte
}

// runSink feeds a sink's Consume stream in acknowledged batches and has
// the sources' positions saved as they are acknowledged.
func (r *Relay) runSink(ctx context.Context, n Node, conn *grpc.ClientConn, in <-chan []byte, by map[string]Node, led *ledger, saves *saver) error {
	srcByID := map[string]string{}
	for a, nd := range by {
		if nd.Kind == Source {
			srcByID[nd.ID] = a
		}
	}
	var f frame
	var marks []mark
	for ctx.Err() == nil {
		stream, err := conn.NewStream(ctx, &flowctlv1.ConsumerService_ServiceDesc.Streams[0],
			flowctlv1.ConsumerService_Consume_FullMethodName, grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		marks = marks[:0]
		count := 0
		deadline := time.NewTimer(r.opts.CommitInterval)
	feed:
		for count < r.opts.CommitEvery {
			var b []byte
			select {
			case b = <-in:
			default:
				select {
				case <-ctx.Done():
					deadline.Stop()
					return nil
				case <-deadline.C:
					break feed
				case b = <-in:
				}
			}
			f.b = b
			if err := stream.SendMsg(&f); err != nil {
				deadline.Stop()
				return fmt.Errorf("consume: send: %w", err)
			}
			count++
			if ev, err := scanEvent(b); err == nil && len(ev.position) > 0 {
				if src, ok := srcByID[string(ev.source)]; ok {
					marks = setMark(marks, src, ev.position)
				}
			}
			if count%64 == 0 {
				select {
				case <-deadline.C:
					break feed
				default:
				}
			}
		}
		deadline.Stop()
		if err := stream.CloseSend(); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		var resp flowctlv1.ConsumeResponse
		if err := stream.RecvMsg(&resp); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		if resp.GetEventsFailed() > 0 {
			return fmt.Errorf("consume: the sink failed %d events: %v", resp.GetEventsFailed(), resp.GetErrors())
		}
		r.node(n.Address).Acked.Add(uint64(count))
		for _, m := range marks {
			if pos, ok := led.acked(m.source, n.Address, string(m.position)); ok {
				saves.save(m.source, pos)
			}
		}
	}
	return nil
}

func setMark(marks []mark, src string, pos []byte) []mark {
	for i := range marks {
		if marks[i].source == src {
			marks[i].position = pos
			return marks
		}
	}
	return append(marks, mark{source: src, position: pos})
}

// saver saves sources' positions (SourceService.SaveState) off the path of
// the events: a sink goes on with its next batch while the position of the
// last is saved, and only the newest position of a source is saved when
// several wait.
type saver struct {
	conns map[string]*grpc.ClientConn
	log   *slog.Logger
	mu    sync.Mutex
	next  map[string]string // source address -> position to save
	wake  chan struct{}
}

func newSaver(conns map[string]*grpc.ClientConn, log *slog.Logger) *saver {
	return &saver{conns: conns, log: log, next: map[string]string{}, wake: make(chan struct{}, 1)}
}

func (s *saver) save(src, pos string) {
	s.mu.Lock()
	s.next[src] = pos
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run saves until ctx ends, then saves what is left within a short grace.
// It leaves saveGap between saves: a save is a write and a sync of the
// source's state file, and saving every batch would cost the source more
// than the resume it shortens is worth.
func (s *saver) run(ctx context.Context) {
	defer func() {
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		s.flush(gctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.flush(ctx)
		if !sleep(ctx, saveGap) {
			return
		}
	}
}

func (s *saver) flush(ctx context.Context) {
	s.mu.Lock()
	next := s.next
	s.next = map[string]string{}
	s.mu.Unlock()
	for _, src := range slices.Sorted(maps.Keys(next)) {
		sc := flowctlv1.NewSourceServiceClient(s.conns[src])
		if _, err := sc.SaveState(ctx, &flowctlv1.SaveStateRequest{State: map[string]string{resumeTokenKey: next[src]}}); err != nil && ctx.Err() == nil {
			s.log.Warn("relay: save a source's position", "source", src, "err", err)
		}
	}
}
