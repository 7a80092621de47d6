package watch

import "time"

// Liveness counts consecutive failed liveness probes of one instance. The
// loop makes a fresh one for every new instance.
type Liveness struct {
	// Threshold is the health block's failure_threshold.
	Threshold int
	failures  int
}

// Probe records one probe result and reports the failure once Threshold
// probes in a row have failed. A success starts the count over.
func (l *Liveness) Probe(ok bool) (Failure, bool) {
	if ok {
		l.failures = 0
		return Failure{}, false
	}
	l.failures++
	if l.failures >= max(l.Threshold, 1) {
		return LivenessFailed(l.failures), true
	}
	return Failure{}, false
}

// recentIntervals is how many of the latest heartbeat intervals make the
// cadence.
const recentIntervals = 3

// Heartbeat follows a registered component's heartbeats. Components in the
// wild beat every 10s (older) or 30s (SDK) whatever they are told, so the
// cadence is learnt from the beats themselves: the longest of the last few
// intervals, or Declared until two beats have been seen.
type Heartbeat struct {
	// Declared is the interval the component was given
	// (FLOWCTL_HEARTBEAT_INTERVAL).
	Declared time.Duration
	// Last is the time of the latest beat; zero before the first, when
	// nothing is missed.
	Last      time.Time
	intervals []time.Duration
}

// Beat records a heartbeat received at.
func (h *Heartbeat) Beat(at time.Time) {
	if !h.Last.IsZero() {
		if d := at.Sub(h.Last); d > 0 {
			h.intervals = append(h.intervals, d)
			if len(h.intervals) > recentIntervals {
				h.intervals = h.intervals[len(h.intervals)-recentIntervals:]
			}
		}
	}
	if at.After(h.Last) {
		h.Last = at
	}
}

// Cadence is the component's observed heartbeat interval.
func (h *Heartbeat) Cadence() time.Duration {
	if len(h.intervals) == 0 {
		return h.Declared
	}
	var c time.Duration
	for _, d := range h.intervals {
		c = max(c, d)
	}
	return c
}

// Missed reports a missed heartbeat: silence since the last beat longer
// than HeartbeatGrace cadences.
func (h *Heartbeat) Missed(now time.Time) (Failure, bool) {
	c := h.Cadence()
	if h.Last.IsZero() || c <= 0 {
		return Failure{}, false
	}
	if silence := now.Sub(h.Last); silence > HeartbeatGrace*c {
		return HeartbeatMissed(silence), true
	}
	return Failure{}, false
}
