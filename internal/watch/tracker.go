package watch

import (
	"encoding/json"
	"fmt"
	"time"
)

// DataNamespace is where the loop keeps each component's State in the
// state file (state.Tx.PutData, keyed by address).
const DataNamespace = "watch"

// Clock is the tracker's time source.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Rand is the jitter source; *math/rand/v2.Rand satisfies it.
type Rand interface {
	// Float64 returns a value in [0, 1).
	Float64() float64
}

// Phase is where a component stands as the watcher sees it. The values are
// persisted; never change one.
type Phase string

// Phases of a tracked component.
const (
	// PhaseRunning: the current instance runs (or is believed to).
	PhaseRunning Phase = "running"
	// PhaseBackoff: it failed and a restart is due at State.NextAttempt.
	PhaseBackoff Phase = "backoff"
	// PhaseCrashloop: it failed with its retries spent; nothing is
	// restarted until something else starts it (Reset).
	PhaseCrashloop Phase = "crashloop"
	// PhaseEnded: it ended and the policy does not restart that end
	// (never; a clean exit under on-failure).
	PhaseEnded Phase = "ended"
)

// State is everything a Tracker remembers, as plain data to persist.
type State struct {
	Phase Phase `json:"phase"`
	// Instance is the instance the state is about (the reconciler's
	// bookkeeping: a different instance in state means an apply started
	// it, which resets the streak).
	Instance string `json:"instance,omitempty"`
	// Attempt counts the restarts of the current failure streak; while
	// backing off it is the number of the attempt pending.
	Attempt int `json:"attempt"`
	// StartedAt is when the current instance started, as far as the tracker
	// knows (Restarted, Reset); zero when it was running before tracking.
	StartedAt time.Time `json:"started_at,omitzero"`
	// HealthySince starts the stability period (first Healthy after a
	// start); zero while none was seen.
	HealthySince time.Time `json:"healthy_since,omitzero"`
	// The last failure: its reason, exit code (exits only) and time.
	Reason   string    `json:"reason,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	FailedAt time.Time `json:"failed_at,omitzero"`
	// Delay and NextAttempt of the pending attempt (PhaseBackoff).
	Delay       time.Duration `json:"delay,omitempty"`
	NextAttempt time.Time     `json:"next_attempt,omitzero"`
	// Uncounted: the pending restart is for a failure nobody watched
	// (Failure.Unwatched); it is not one of the streak's attempts.
	Uncounted bool `json:"uncounted,omitempty"`
}

// Marshal encodes the state for PutData.
func (s State) Marshal() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode watch state: %w", err)
	}
	return b, nil
}

// UnmarshalState decodes what Marshal wrote.
func UnmarshalState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("decode watch state: %w", err)
	}
	return s, nil
}

// Action is what a Decision asks the loop to do.
type Action string

// Actions of a Decision.
const (
	// ActRestart: start a new instance at Decision.At.
	ActRestart Action = "restart"
	// ActCrashloop: retries are spent; mark the component crashloop.
	ActCrashloop Action = "crashloop"
	// ActNone: the policy leaves the ended component alone.
	ActNone Action = "none"
)

// Decision is the tracker's answer to a failure.
type Decision struct {
	Action Action
	// Attempt is the restart's number in the streak (1-based); for a
	// crashloop, the restarts made.
	Attempt int
	// Delay is the backoff chosen; At = the failure's time + Delay.
	Delay time.Duration
	At    time.Time
	// Reason is the failure as history spells it ("exited code=2").
	Reason   string
	ExitCode *int
	// Uncounted: a restart that is not one of the streak's attempts (the
	// failure happened while nobody watched).
	Uncounted bool
}

// Tracker applies a Policy to one component's failures. See the package
// documentation for how the loop drives it.
type Tracker struct {
	p     Policy
	clock Clock
	rand  Rand
	st    State
}

// New tracks a component believed to be running, with no failure behind it.
func New(p Policy, clock Clock, rand Rand) *Tracker {
	return Restore(p, clock, rand, State{})
}

// Restore tracks a component from a persisted State: a pending attempt
// keeps its number and due time, a streak its count.
func Restore(p Policy, clock Clock, rand Rand, st State) *Tracker {
	if st.Phase == "" {
		st.Phase = PhaseRunning
	}
	return &Tracker{p: p, clock: clock, rand: rand, st: st}
}

// State returns the tracker's memory, to persist after any call that
// changed it.
func (t *Tracker) State() State { return t.st }

// Policy returns the policy the tracker applies.
func (t *Tracker) Policy() Policy { return t.p }

// SetPolicy changes the policy (an apply changed the restart block); the
// streak and a pending attempt are kept.
func (t *Tracker) SetPolicy(p Policy) { t.p = p }

// Failed records that the current instance ended or failed, and decides.
//
// While a restart is pending, or after a crashloop or an end the policy
// leaves alone, a further report of the same end changes nothing and gets
// the same answer; only KindStartFailed during a backoff counts as a new
// failure (the pending attempt's start failed).
func (t *Tracker) Failed(f Failure) Decision {
	switch t.st.Phase {
	case PhaseBackoff:
		if f.Kind != KindStartFailed {
			return t.pending()
		}
	case PhaseCrashloop:
		return Decision{Action: ActCrashloop, Attempt: t.st.Attempt, Reason: t.st.Reason, ExitCode: t.st.ExitCode}
	case PhaseEnded:
		return Decision{Action: ActNone, Attempt: t.st.Attempt, Reason: t.st.Reason, ExitCode: t.st.ExitCode}
	}
	now := t.clock.Now()
	if t.stable(now) {
		t.st.Attempt = 0
	}
	t.st.Reason, t.st.ExitCode, t.st.FailedAt = f.Reason(), f.exitCode(), now
	t.st.HealthySince = time.Time{}
	t.st.Delay, t.st.NextAttempt = 0, time.Time{}
	if !t.p.Restarts(f) {
		t.st.Phase = PhaseEnded
		return Decision{Action: ActNone, Attempt: t.st.Attempt, Reason: t.st.Reason, ExitCode: t.st.ExitCode}
	}
	if f.Unwatched && t.st.Phase == PhaseRunning {
		// Not the component's failure to count: restart it now, the
		// streak as it was.
		t.st.Reason += unwatchedNote
		t.st.NextAttempt, t.st.Phase, t.st.Uncounted = now, PhaseBackoff, true
		return t.pending()
	}
	n := t.st.Attempt + 1
	if !t.p.retriesLeft(n) {
		t.st.Phase = PhaseCrashloop
		return Decision{Action: ActCrashloop, Attempt: t.st.Attempt, Reason: t.st.Reason, ExitCode: t.st.ExitCode}
	}
	t.st.Attempt = n
	t.st.Delay = t.p.Delay(n, t.rand.Float64())
	t.st.NextAttempt = now.Add(t.st.Delay)
	t.st.Phase, t.st.Uncounted = PhaseBackoff, false
	return t.pending()
}

// unwatchedNote completes the reason of a failure nobody watched.
const unwatchedNote = " while the control plane was not watching (not counted)"

func (t *Tracker) pending() Decision {
	return Decision{
		Action: ActRestart, Attempt: t.st.Attempt, Delay: t.st.Delay, At: t.st.NextAttempt,
		Reason: t.st.Reason, ExitCode: t.st.ExitCode, Uncounted: t.st.Uncounted,
	}
}

// stable reports whether the current instance has run healthy long enough
// to end the streak.
func (t *Tracker) stable(now time.Time) bool {
	return t.st.Phase == PhaseRunning && !t.st.HealthySince.IsZero() && now.Sub(t.st.HealthySince) >= t.p.ResetAfter
}

// Pending reports the due time of the pending restart, if one is pending.
func (t *Tracker) Pending() (at time.Time, ok bool) {
	return t.st.NextAttempt, t.st.Phase == PhaseBackoff
}

// Wait is how long until the pending restart is due: zero when it is due
// (or overdue, as after a watcher restart) or none is pending.
func (t *Tracker) Wait() time.Duration {
	if t.st.Phase != PhaseBackoff {
		return 0
	}
	return max(t.st.NextAttempt.Sub(t.clock.Now()), 0)
}

// Restarted records that the watcher started the pending attempt's new
// instance. The streak goes on: its count resets only after ResetAfter of
// healthy running.
func (t *Tracker) Restarted() {
	t.st.Phase, t.st.Uncounted = PhaseRunning, false
	t.st.StartedAt = t.clock.Now()
	t.st.HealthySince = time.Time{}
	t.st.Delay, t.st.NextAttempt = 0, time.Time{}
}

// Reset records an instance the watcher did not start (apply created,
// replaced or restarted it): a deliberate start ends any streak, backoff
// or crashloop.
func (t *Tracker) Reset() {
	t.Restarted()
	t.st.Attempt = 0
}

// Healthy records that the current instance is seen running and healthy.
// The first call after a start begins the stability period. It is ignored
// unless the tracker believes the component runs: an instance appearing
// during a backoff or crashloop was started by someone else (Reset).
func (t *Tracker) Healthy() {
	if t.st.Phase != PhaseRunning {
		return
	}
	if t.st.HealthySince.IsZero() {
		t.st.HealthySince = t.clock.Now()
	}
}

// Status is what `flowctl status` shows of the watcher's view.
type Status struct {
	Phase Phase `json:"phase"`
	// Attempt: the pending attempt while backing off; the restarts of the
	// streak otherwise (0 once the stability period has passed).
	Attempt     int       `json:"attempt"`
	MaxRetries  int       `json:"max_retries"`
	Reason      string    `json:"reason,omitempty"`
	ExitCode    *int      `json:"exit_code,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// In is the time left until NextAttempt (backoff only).
	In time.Duration `json:"next_attempt_in,omitempty"`
	// Uncounted: the pending restart is not one of the streak's attempts.
	Uncounted bool `json:"uncounted,omitempty"`
}

// Status reports the tracker's view now.
func (t *Tracker) Status() Status {
	now := t.clock.Now()
	s := Status{Phase: t.st.Phase, Attempt: t.st.Attempt, MaxRetries: t.p.MaxRetries, Reason: t.st.Reason, ExitCode: t.st.ExitCode}
	if t.stable(now) {
		s.Attempt = 0
	}
	if t.st.Phase == PhaseBackoff {
		s.NextAttempt = t.st.NextAttempt
		s.In = max(t.st.NextAttempt.Sub(now), 0)
		s.Uncounted = t.st.Uncounted
	}
	return s
}

// NextAttemptText is "next attempt in 4s" while backing off, "" otherwise.
func (s Status) NextAttemptText() string {
	if s.Phase != PhaseBackoff {
		return ""
	}
	if s.In <= 0 {
		return "next attempt now"
	}
	return "next attempt in " + roundWait(s.In).String()
}

// roundWait rounds a wait for people: whole seconds from 1s, 10ms steps
// below (an initial delay of 0.5s shows as 500ms, not 0s).
func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	if r := d.Round(10 * time.Millisecond); r > 0 {
		return r
	}
	return d
}

// String is the one-line summary status prints: "backoff: exited code=2,
// attempt 3 of 5, next attempt in 4s", "crashloop: exited code=2 after 5
// restarts".
func (s Status) String() string {
	switch s.Phase {
	case PhaseBackoff:
		of := ""
		if s.MaxRetries >= 0 {
			of = fmt.Sprintf(" of %d", s.MaxRetries)
		}
		if s.Uncounted {
			return fmt.Sprintf("backoff: %s, %s", s.Reason, s.NextAttemptText())
		}
		return fmt.Sprintf("backoff: %s, attempt %d%s, %s", s.Reason, s.Attempt, of, s.NextAttemptText())
	case PhaseCrashloop:
		return fmt.Sprintf("crashloop: %s after %d %s", s.Reason, s.Attempt, plural(s.Attempt, "restart", "restarts"))
	case PhaseEnded:
		return "ended: " + s.Reason
	}
	if s.Attempt > 0 {
		return fmt.Sprintf("running (restarted %d× in this streak; last: %s)", s.Attempt, s.Reason)
	}
	return "running"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
