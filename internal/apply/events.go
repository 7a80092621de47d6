package apply

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/plan"
)

// Event types of the machine-readable stream (`apply -json`,
// `destroy -json`; docs/commands.md).
const (
	EventStart          = "start"           // the operation begins: its plan's counts
	EventChangeStart    = "change_start"    // a component's change begins
	EventChangeProgress = "change_progress" // still under way (every ProgressEvery)
	EventChangeComplete = "change_complete" // a component's change is done (ready, or deleted)
	EventChangeError    = "change_error"    // a component's change failed
	EventChangeSkipped  = "change_skipped"  // a change was never started (a dependency failed, an interrupt)
	EventError          = "error"           // the operation could not run or went wrong
	EventSummary        = "summary"         // the last event: what was done, and whether all of it
)

// Event is one step of an apply or destroy.
type Event struct {
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	Operation string    `json:"operation,omitempty"`
	Pipeline  string    `json:"pipeline,omitempty"`
	Address   string    `json:"address,omitempty"`
	Action    string    `json:"action,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// ElapsedMS is how long the change (or the operation, for a summary)
	// has taken.
	ElapsedMS int64  `json:"elapsed_ms,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Message   string `json:"message,omitempty"`
	// Changes counts the plan's changes by action (start).
	Changes map[string]int `json:"changes,omitempty"`
	// Summary fields.
	OK     *bool          `json:"ok,omitempty"`
	Counts map[string]int `json:"counts,omitempty"`
	Failed []FailedChange `json:"failed,omitempty"`
}

// FailedChange is a change a summary reports as failed or not started.
type FailedChange struct {
	Address string `json:"address"`
	Action  string `json:"action"`
	Error   string `json:"error,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// JSONStream writes events as JSON, one object per line. It is safe for
// concurrent use: the walker reports from one goroutine per change.
type JSONStream struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	emitted map[string]bool
}

// NewJSONStream streams to w.
func NewJSONStream(w io.Writer) *JSONStream {
	return &JSONStream{w: w, now: time.Now, emitted: map[string]bool{}}
}

// Emitted says whether an event of type typ was written.
func (s *JSONStream) Emitted(typ string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emitted[typ]
}

// Emit writes ev, stamping its time when unset.
func (s *JSONStream) Emit(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	ev.Time = ev.Time.UTC()
	b, err := json.Marshal(ev)
	if err != nil {
		return // an Event always encodes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emitted[ev.Type] = true
	_, _ = s.w.Write(append(b, '\n'))
}

// Stream runs an operation whose events go to out (run gives them to the
// engine, Options.Events). An error of run before any summary — the
// operation could not run: a stale plan, a held lock — is an error event;
// the last event is always a summary.
func Stream(out io.Writer, operation string, run func(s *JSONStream) error) error {
	s := NewJSONStream(out)
	start := s.now()
	err := run(s)
	if !s.Emitted(EventSummary) {
		if err != nil {
			s.Emit(Event{Type: EventError, Operation: operation, Message: err.Error()})
		}
		s.Emit(SummaryEvent(nil, operation, s.now().Sub(start), err))
	}
	return err
}

// StartEvent is the first event of running p.
func StartEvent(p *plan.Plan, operation string) Event {
	counts := map[string]int{}
	for a, n := range p.Counts() {
		if a != plan.NoOp {
			counts[string(a)] = n
		}
	}
	return Event{Type: EventStart, Operation: operation, Pipeline: p.Pipeline, Changes: counts}
}

// SummaryEvent is the last event of an operation that ran: res's counts,
// and what failed. err is the operation's error (nil: all done).
func SummaryEvent(res *Result, operation string, elapsed time.Duration, err error) Event {
	ok := err == nil
	ev := Event{Type: EventSummary, Operation: operation, OK: &ok, ElapsedMS: elapsed.Milliseconds()}
	if res == nil {
		return ev
	}
	ev.Counts = map[string]int{
		"added": res.Added, "changed": res.Changed, "destroyed": res.Destroyed,
		"replaced": res.Replaced, "restarted": res.Restarted, "adopted": res.Adopted,
	}
	for _, o := range res.Failed() {
		fc := FailedChange{Address: o.Address, Action: string(o.Action), Skipped: o.Skipped}
		if o.Err != nil {
			fc.Error = o.Err.Error()
		}
		ev.Failed = append(ev.Failed, fc)
	}
	return ev
}

// emit reports ev to the run's Events hook, if any.
func (w *walker) emit(ev Event) {
	if w.Events == nil {
		return
	}
	ev.Operation = w.Operation
	w.Events(ev)
}

// changeEvent is an event about n's change.
func changeEvent(typ string, n *node) Event {
	return Event{Type: typ, Address: n.ch.Address, Action: string(n.ch.Action), Reason: string(n.ch.Reason)}
}

// emitSkipped reports that n's change was never started, and why.
func (w *walker) emitSkipped(n *node) {
	ev := changeEvent(EventChangeSkipped, n)
	ev.Message = n.outcome.Skipped
	w.emit(ev)
}
