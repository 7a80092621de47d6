package logs

import (
	"bufio"
	"container/heap"
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// item is a line waiting in a merge.
type item struct {
	line Line
	// rank puts a marker before a line of the same time.
	rank int
	// order is the component's place among the components (by address),
	// for lines of the same time from different components.
	order int
	// seq is the arrival order, which keeps a log's own order among lines
	// of the same time.
	seq     uint64
	arrived time.Time
	src     *lineSource // backlog: the log to read the next line from
}

const (
	rankMarker = 0
	rankLine   = 1
)

type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.line.Time.Equal(b.line.Time) {
		return a.line.Time.Before(b.line.Time)
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	if a.order != b.order {
		return a.order < b.order
	}
	return a.seq < b.seq
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// position is how far a log has been read: the latest line time and how
// many lines carried exactly that time, so that a log opened again from
// that time (Since) can skip what was already shown.
type position struct {
	last time.Time
	n    int
}

func (p *position) saw(t time.Time) {
	switch {
	case t.After(p.last):
		p.last, p.n = t, 1
	case t.Equal(p.last):
		p.n++
	}
}

// resumer drops, from a log read again since position p, the lines that
// were already shown: those before p.last and the first p.n at p.last.
type resumer struct {
	since time.Time
	skip  int
}

func (p position) resume() resumer { return resumer{since: p.last, skip: p.n} }

// then is the position after reading, from p on, lines up to read.
func (p position) then(read position) position {
	switch {
	case read.last.IsZero() || read.last.Before(p.last):
		return p
	case read.last.Equal(p.last):
		return position{last: p.last, n: p.n + read.n}
	}
	return read
}

func (r *resumer) seen(t time.Time) bool {
	if r.since.IsZero() {
		return false
	}
	if t.Before(r.since) {
		return true
	}
	if t.Equal(r.since) && r.skip > 0 {
		r.skip--
		return true
	}
	return false
}

// lineSource reads one log's lines.
type lineSource struct {
	addr  string
	order int
	br    *bufio.Reader
	rc    io.Closer
	last  time.Time // of the previous line, for lines without a time
	pos   position
	res   resumer
}

func newLineSource(addr string, order int, rc io.ReadCloser) *lineSource {
	return &lineSource{addr: addr, order: order, br: bufio.NewReaderSize(rc, 64<<10), rc: rc}
}

// next returns the next line not already seen; io.EOF at the end.
func (s *lineSource) next() (Line, error) {
	for {
		raw, err := s.br.ReadString('\n')
		if raw == "" && err != nil {
			return Line{}, err
		}
		l, ok := ParseLine(s.addr, strings.TrimSuffix(raw, "\n"))
		if !ok {
			l.Time = s.last // keep an unstamped line in its place
		}
		s.last = l.Time
		if s.res.seen(l.Time) {
			continue
		}
		s.pos.saw(l.Time)
		return l, nil
	}
}

// mergeBacklog emits the lines of srcs interleaved by time, each log in its
// own order, with the markers among them. A component's markers older than
// its first line are dropped: they belong to lines no longer shown (Since,
// Tail, rotation). Sources are closed when read.
func mergeBacklog(ctx context.Context, srcs []*lineSource, markers []Line, emit func(Line) error) error {
	var h itemHeap
	var seq uint64
	first := map[string]time.Time{}
	advance := func(s *lineSource) error {
		l, err := s.next()
		if err != nil {
			_ = s.rc.Close()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		seq++
		heap.Push(&h, &item{line: l, rank: rankLine, order: s.order, seq: seq, src: s})
		return nil
	}
	for _, s := range srcs {
		if err := advance(s); err != nil {
			return err
		}
	}
	for _, it := range h {
		if t, ok := first[it.src.addr]; !ok || it.line.Time.Before(t) {
			first[it.src.addr] = it.line.Time
		}
	}
	orderOf := map[string]int{}
	for _, s := range srcs {
		orderOf[s.addr] = s.order
	}
	for _, m := range markers {
		if t, ok := first[m.Component]; ok && !m.Time.Before(t) {
			seq++
			heap.Push(&h, &item{line: m, rank: rankMarker, order: orderOf[m.Component], seq: seq})
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := heap.Pop(&h).(*item)
		if err := emit(it.line); err != nil {
			return err
		}
		if it.src != nil {
			if err := advance(it.src); err != nil {
				return err
			}
		}
	}
	return nil
}

// holdback orders live lines that reach it from logs read at different
// speeds. A line waits until state has been read Lag after its time (so
// that the marker of the instance that wrote it is known and goes first)
// or, whatever state says, until it has waited MaxHold.
type holdback struct {
	h         itemHeap
	seq       uint64
	lag       time.Duration
	maxHold   time.Duration
	watermark time.Time
}

func (b *holdback) add(l Line, rank, order int, now time.Time) {
	b.seq++
	heap.Push(&b.h, &item{line: l, rank: rank, order: order, seq: b.seq, arrived: now})
}

// advance records that state was read at t.
func (b *holdback) advance(t time.Time) {
	if t.After(b.watermark) {
		b.watermark = t
	}
}

// ready pops the lines that may go out now, in order.
func (b *holdback) ready(now time.Time) []Line {
	var out []Line
	for b.h.Len() > 0 {
		top := b.h[0]
		if top.line.Time.Add(b.lag).After(b.watermark) && now.Sub(top.arrived) < b.maxHold {
			break
		}
		out = append(out, heap.Pop(&b.h).(*item).line)
	}
	return out
}

// flush pops every line, in order.
func (b *holdback) flush() []Line {
	var out []Line
	for b.h.Len() > 0 {
		out = append(out, heap.Pop(&b.h).(*item).line)
	}
	return out
}
