package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
)

// Defaults of Options.
const (
	DefaultRelist  = 250 * time.Millisecond
	DefaultLag     = 500 * time.Millisecond
	DefaultMaxHold = 2 * time.Second
	// goneGrace is how long a component's log is still read after state
	// stopped listing it, for the last lines of a destroyed component.
	goneGrace = 2 * time.Second
	// maxReopenWait bounds the wait between attempts to read again a log
	// that ended or could not be opened.
	maxReopenWait = 2 * time.Second
)

// Options select and shape what Run emits.
type Options struct {
	// Addresses are the components to show; empty means all.
	Addresses []string
	// Since drops lines older than it.
	Since time.Time
	// Tail is how many of each component's last lines the backlog shows:
	// negative for all, 0 for none (with Follow: only what comes next).
	Tail int
	// Follow keeps reading until ctx ends.
	Follow bool
	// Relist is how often state is read while following; Lag and MaxHold
	// tune the hold-back of live lines (see holdback). Zero: defaults.
	Relist, Lag, MaxHold time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Warn reports a log that could not be read; nil: ignored. Run goes on
	// with the other components.
	Warn func(addr string, err error)
	// Log receives debug notes; nil: discarded.
	Log *slog.Logger
}

// Run emits the selected components' log lines in time order: the
// backlog, then, with Follow, what comes until ctx ends (which is not an
// error). emit is called from one goroutine at a time; an error from it
// ends Run.
func Run(ctx context.Context, inv Inventory, readers ReaderFor, opts Options, emit func(Line) error) error {
	r := &runner{inv: inv, readers: readers, opts: opts, emit: emit}
	r.defaults()
	snap, err := inv.Snapshot(ctx, 0)
	if err != nil {
		return err
	}
	insts := r.selected(snap.Instances)
	if !opts.Follow {
		for _, a := range opts.Addresses {
			if !slices.ContainsFunc(insts, func(in Instance) bool { return in.Address == a }) {
				return fmt.Errorf("state records no instance of %s", a)
			}
		}
	}
	pos, err := r.backlog(ctx, insts, snap.Markers)
	if err != nil || !opts.Follow {
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	return r.follow(ctx, snap, insts, pos)
}

type runner struct {
	inv     Inventory
	readers ReaderFor
	opts    Options
	emit    func(Line) error
	// ended holds the components followed until state stopped listing
	// them: one listed again is a new run, after a marker.
	ended map[string]bool
}

func (r *runner) defaults() {
	o := &r.opts
	if o.Relist <= 0 {
		o.Relist = DefaultRelist
	}
	if o.Lag <= 0 {
		o.Lag = DefaultLag
	}
	if o.MaxHold <= 0 {
		o.MaxHold = DefaultMaxHold
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Warn == nil {
		o.Warn = func(string, error) {}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

func (r *runner) wanted(addr string) bool {
	return len(r.opts.Addresses) == 0 || slices.Contains(r.opts.Addresses, addr)
}

func (r *runner) selected(all []Instance) []Instance {
	var out []Instance
	for _, in := range all {
		if r.wanted(in.Address) {
			out = append(out, in)
		}
	}
	return out
}

// open opens an instance's log.
func (r *runner) open(ctx context.Context, in Instance, opts providers.LogOptions) (io.ReadCloser, error) {
	rd, err := r.readers(in.Provider)
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", in.Address, err)
	}
	opts.Timestamps = true
	// Executors' errors name the component already.
	return rd.Logs(ctx, in.Handle, opts)
}

// backlog emits what the logs hold now and returns how far each was read.
func (r *runner) backlog(ctx context.Context, insts []Instance, markers []Line) (map[string]position, error) {
	pos := map[string]position{}
	if r.opts.Tail == 0 {
		return pos, nil
	}
	var srcs []*lineSource
	for i, in := range insts {
		rc, err := r.open(ctx, in, providers.LogOptions{Since: r.opts.Since, Tail: max(r.opts.Tail, 0)})
		if err != nil {
			r.opts.Warn(in.Address, err)
			continue
		}
		srcs = append(srcs, newLineSource(in.Address, i, rc))
	}
	err := mergeBacklog(ctx, srcs, currentMarkers(insts, markers), r.emit)
	for _, s := range srcs {
		_ = s.rc.Close()
		pos[s.addr] = s.pos
	}
	return pos, err
}

// currentMarkers keeps the markers of the selected components and moves
// each component's latest one to its current instance's start, when that
// is earlier: an apply records its event once the instance is ready,
// after its first lines. A creation goes right after the marker before it
// (the removal that ended the previous run; none of the new run's lines
// is older), and the first creation of a component, which separates
// nothing, is left out.
func currentMarkers(insts []Instance, markers []Line) []Line {
	latest, before := map[string]int{}, map[string]time.Time{}
	byAddr := map[string]Instance{}
	for _, in := range insts {
		byAddr[in.Address] = in
	}
	var out []Line
	for _, m := range markers {
		if _, ok := byAddr[m.Component]; !ok {
			continue
		}
		i, seen := latest[m.Component]
		if m.kind == markerCreated {
			if !seen {
				continue
			}
			m.Time = out[i].Time.Add(time.Nanosecond)
		}
		if seen {
			before[m.Component] = out[i].Time
		}
		latest[m.Component] = len(out)
		out = append(out, m)
	}
	for addr, i := range latest {
		// Never across the previous marker: a start time older than that
		// is not this instance's.
		st := byAddr[addr].StartedAt
		if !st.IsZero() && st.Before(out[i].Time) && st.After(before[addr]) {
			out[i].Time = st
		}
	}
	return out
}

// followed is one component as the follow loop knows it.
type followed struct {
	inst  Instance
	order int
	// next passes the newest instance to the reader, which moves to it when
	// the log it reads ends.
	next   chan Instance
	cancel context.CancelFunc
	gone   time.Time // when state stopped listing it; zero while listed
	// cutoff is the time of the first snapshot that no longer listed it:
	// its reader may go on reading a log the component shares with a
	// later run of it (the process executor's), whose lines are not its.
	cutoff time.Time
}

// live is a line read while following.
type live struct {
	line  Line
	order int
}

func (r *runner) follow(ctx context.Context, snap Snapshot, insts []Instance, pos map[string]position) error {
	now := r.opts.Now
	hb := &holdback{lag: r.opts.Lag, maxHold: r.opts.MaxHold}
	hb.advance(snap.At)
	lines := make(chan live, 1024)
	comps := map[string]*followed{}
	var wg sync.WaitGroup
	stopAll := func() {
		for _, f := range comps {
			f.cancel()
		}
		wg.Wait()
	}
	defer stopAll()
	nextOrder := 0
	byOrder := map[int]*followed{}
	// add holds a line back, unless it came from the reader of a run that
	// ended before the line's time.
	add := func(l live) {
		if f := byOrder[l.order]; f != nil && !f.cutoff.IsZero() && l.line.Time.After(f.cutoff) {
			return
		}
		hb.add(l.line, rankLine, l.order, now())
	}
	start := func(in Instance, from position) {
		fctx, cancel := context.WithCancel(ctx)
		f := &followed{inst: in, order: nextOrder, next: make(chan Instance, 1), cancel: cancel}
		byOrder[f.order] = f
		nextOrder++
		comps[in.Address] = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.read(fctx, in, f.order, from, f.next, lines)
		}()
	}
	for _, in := range insts {
		from, ok := pos[in.Address]
		switch {
		case r.opts.Tail == 0:
			from = position{last: laterOf(r.opts.Since, snap.At)}
		case !ok:
			from = position{last: r.opts.Since}
		}
		start(in, from)
	}
	lastSeq := snap.LastSeq
	flush := func(ls []Line) error {
		for _, l := range ls {
			if err := r.emit(l); err != nil {
				return err
			}
		}
		return nil
	}
	tick := time.NewTicker(r.opts.Relist)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			stopAll()
		drain:
			for {
				select {
				case l := <-lines:
					add(l)
				default:
					break drain
				}
			}
			return flush(hb.flush())
		case l := <-lines:
			add(l)
		case <-tick.C:
			s, err := r.inv.Snapshot(ctx, lastSeq)
			if err != nil {
				if ctx.Err() == nil {
					r.opts.Log.Debug("read state while following logs", "err", err)
				}
				break
			}
			lastSeq = s.LastSeq
			r.reconcile(s, comps, hb, start)
			hb.advance(s.At)
		}
		if err := flush(hb.ready(now())); err != nil {
			return err
		}
	}
}

// reconcile brings the followed components in line with a snapshot:
// components that appeared are read from their start, new instances get
// their marker and are passed to their reader, and components that state
// no longer lists are let go after goneGrace.
func (r *runner) reconcile(s Snapshot, comps map[string]*followed, hb *holdback, start func(Instance, position)) {
	now := r.opts.Now()
	listed := map[string]bool{}
	for _, in := range r.selected(s.Instances) {
		listed[in.Address] = true
		f, ok := comps[in.Address]
		if !ok || !f.gone.IsZero() {
			again := ok || r.ended[in.Address]
			if ok {
				f.cancel()
			}
			r.opts.Log.Debug("following a new component", "address", in.Address, "again", again)
			start(in, position{last: laterOf(r.opts.Since, in.StartedAt)})
			if again {
				// Destroyed and created again: a new run, after a marker.
				hb.add(r.markerFor(in, in, s.Markers), rankMarker, comps[in.Address].order, now)
			}
			continue
		}
		if in.InstanceID != f.inst.InstanceID {
			hb.add(r.markerFor(in, f.inst, s.Markers), rankMarker, f.order, now)
		}
		if in.Provider != f.inst.Provider || !slices.Equal(in.Handle, f.inst.Handle) {
			select { // keep only the newest
			case <-f.next:
			default:
			}
			f.next <- in
		}
		f.inst = in
	}
	for _, m := range s.Markers {
		// The end of a component's run, between its last lines and those
		// of a later run.
		if f, ok := comps[m.Component]; ok && m.kind == markerRemoved {
			hb.add(m, rankMarker, f.order, now)
		}
	}
	for addr, f := range comps {
		switch {
		case listed[addr]:
		case f.gone.IsZero():
			f.gone, f.cutoff = now, s.At
		case now.Sub(f.gone) >= goneGrace:
			f.cancel()
			delete(comps, addr)
			if r.ended == nil {
				r.ended = map[string]bool{}
			}
			r.ended[addr] = true
		}
	}
}

// markerFor is the marker of instance in, which followed prev: the latest
// history event of the component that explains it, or, when none does
// yet, what state shows. It goes at the instance's start.
func (r *runner) markerFor(in, prev Instance, markers []Line) Line {
	m := Line{Component: in.Address, Stream: StreamMarker, Text: newInstanceText(in.SpecHash != prev.SpecHash), Time: in.StartedAt}
	for i := len(markers) - 1; i >= 0; i-- {
		if markers[i].Component == in.Address && markers[i].kind != markerRemoved {
			m.Text = markers[i].Text
			if m.Time.IsZero() || markers[i].Time.Before(m.Time) {
				m.Time = markers[i].Time
			}
			break
		}
	}
	if m.Time.IsZero() {
		m.Time = r.opts.Now()
	}
	return m
}

// read follows one component's log from position from on: across the
// ends of its instances' logs (a stopped container), moving to the newest
// instance state gives, until ctx ends.
func (r *runner) read(ctx context.Context, in Instance, order int, from position, next <-chan Instance, out chan<- live) {
	seen := from
	warned := false
	wait := r.opts.Relist
	for {
		select {
		case in = <-next:
		default:
		}
		rc, err := r.open(ctx, in, providers.LogOptions{Follow: true, Since: seen.last})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !warned {
				r.opts.Log.Debug("open log to follow", "address", in.Address, "err", err)
				warned = true
			}
		} else {
			warned = false
			src := newLineSource(in.Address, order, rc)
			src.res = seen.resume()
			stop := context.AfterFunc(ctx, func() { _ = rc.Close() })
			for {
				l, err := src.next()
				if err != nil {
					if !errors.Is(err, io.EOF) && ctx.Err() == nil {
						r.opts.Log.Debug("follow log", "address", in.Address, "err", err)
					}
					break
				}
				// A line read is never dropped for an ending: the loop
				// drains what readers sent once they have all returned.
				select {
				case out <- live{line: l, order: order}:
				default:
					select {
					case out <- live{line: l, order: order}:
					case <-ctx.Done():
					}
				}
			}
			stop()
			_ = rc.Close()
			if src.pos.n > 0 {
				wait = r.opts.Relist
			}
			seen = seen.then(src.pos)
		}
		// The log ended (a stopped container) or could not be opened: look
		// again, less and less often while nothing changes.
		select {
		case <-ctx.Done():
			return
		case in = <-next:
			wait = r.opts.Relist
		case <-time.After(wait):
			wait = min(2*wait, maxReopenWait)
		}
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
