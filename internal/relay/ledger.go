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

// sourceLedger holds one source's positions in the order sent: pending[i]
// is the position of sequence number oldest+i. A sink acknowledges
// positions in the order it received them, so looking one up starts after
// the sink's last acknowledgement and usually stops within one batch.
type sourceLedger struct {
	sinks     []string
	next      uint64   // sequence number of the next event
	oldest    uint64   // sequence number of pending[0]
	pending   []string // positions from oldest to next-1
	acked     map[string]uint64
	committed uint64
}

func newLedger(reach map[string][]string) *ledger {
	l := &ledger{sources: map[string]*sourceLedger{}}
	for src, sinks := range reach {
		l.sources[src] = &sourceLedger{sinks: sinks, next: 1, oldest: 1, acked: map[string]uint64{}}
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
	s.pending = append(s.pending, pos)
	if len(s.pending) > maxPending {
		drop := len(s.pending) - maxPending
		clear(s.pending[:drop])
		s.pending = s.pending[drop:]
		s.oldest += uint64(drop)
	}
	return seq
}

// seqOf finds pos among the pending positions, first after from.
func (s *sourceLedger) seqOf(pos string, from uint64) (uint64, bool) {
	start := 0
	if from >= s.oldest {
		start = int(from - s.oldest + 1)
	}
	for i := start; i < len(s.pending); i++ {
		if s.pending[i] == pos {
			return s.oldest + uint64(i), true
		}
	}
	for i := 0; i < start && i < len(s.pending); i++ {
		if s.pending[i] == pos {
			return s.oldest + uint64(i), true
		}
	}
	return 0, false
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
	seq, ok := s.seqOf(pos, s.acked[sink])
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
	if low <= s.committed || low < s.oldest {
		return "", false
	}
	i := int(low - s.oldest)
	out := s.pending[i]
	clear(s.pending[:i+1])
	s.pending = s.pending[i+1:]
	s.oldest, s.committed = low+1, low
	return out, true
}
