package relay

import "sync"

// maxPending bounds the positions remembered per source between the last
// saved one and the newest sent: a sink that acknowledges nothing of a
// source (a processor in between drops its events) must not grow memory.
// The oldest are forgotten first; a later acknowledgement still saves.
const maxPending = 100_000

// ledger numbers each source's events as they are sent and saves positions
// once every sink the source reaches has acknowledged them.
type ledger struct {
	mu      sync.Mutex
	sources map[string]*sourceLedger
}

type sourceLedger struct {
	sinks     []string
	next      uint64            // sequence number of the next event
	seqOf     map[string]uint64 // position -> sequence number
	posOf     map[uint64]string // sequence number -> position
	oldest    uint64            // lowest sequence number remembered
	acked     map[string]uint64 // sink -> highest acknowledged
	committed uint64
}

func newLedger(reach map[string][]string) *ledger {
	l := &ledger{sources: map[string]*sourceLedger{}}
	for src, sinks := range reach {
		l.sources[src] = &sourceLedger{sinks: sinks, next: 1, oldest: 1,
			seqOf: map[string]uint64{}, posOf: map[uint64]string{}, acked: map[string]uint64{}}
	}
	return l
}

// sent records the next event of src at position pos and returns its
// sequence number (0 when the event carries no position).
func (l *ledger) sent(src, pos string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sources[src]
	if s == nil || pos == "" {
		return 0
	}
	seq := s.next
	s.next++
	s.seqOf[pos], s.posOf[seq] = seq, pos
	for len(s.posOf) > maxPending {
		if p, ok := s.posOf[s.oldest]; ok {
			delete(s.seqOf, p)
			delete(s.posOf, s.oldest)
		}
		s.oldest++
	}
	return seq
}

// acked records that sink acknowledged src's events up to position pos. It
// returns the position to save when every sink of src has now acknowledged
// further than what was saved.
func (l *ledger) acked(src, sink, pos string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sources[src]
	if s == nil {
		return "", false
	}
	seq, ok := s.seqOf[pos]
	if !ok {
		return "", false
	}
	if seq > s.acked[sink] {
		s.acked[sink] = seq
	}
	low := uint64(0)
	for i, k := range s.sinks {
		if a := s.acked[k]; i == 0 || a < low {
			low = a
		}
	}
	if low <= s.committed {
		return "", false
	}
	out, ok := s.posOf[low]
	for q := s.oldest; q <= low; q++ {
		if p, ok := s.posOf[q]; ok {
			delete(s.seqOf, p)
			delete(s.posOf, q)
		}
	}
	s.oldest, s.committed = low+1, low
	return out, ok
}
