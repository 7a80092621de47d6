package watch

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

// model is an independent, naive statement of the policy, against which
// the tracker is checked over random histories.
type model struct {
	p            Policy
	phase        Phase
	attempt      int
	healthySince time.Time
	pending      Decision
}

func (m *model) restarts(f Failure) bool {
	switch m.p.Name {
	case config.RestartAlways:
		return true
	case config.RestartOnFailure:
		return !(f.Kind == KindExited && f.ExitCode == 0)
	}
	return false
}

// base multiplies step by step, capping as it goes.
func (m *model) base(n int) time.Duration {
	d := m.p.Initial
	for i := 1; i < n && d < m.p.Max; i++ {
		d = time.Duration(float64(d) * m.p.Multiplier)
	}
	return min(d, m.p.Max)
}

// check verifies decision d, made at now for f, and advances the model.
func (m *model) check(t *testing.T, step string, now time.Time, f Failure, d Decision) {
	t.Helper()
	fail := func(format string, a ...any) {
		t.Helper()
		t.Fatalf("%s: %s\ndecision %+v\nmodel %+v", step, fmt.Sprintf(format, a...), d, *m)
	}
	switch m.phase {
	case PhaseBackoff:
		if f.Kind != KindStartFailed {
			if !sameDecision(d, m.pending) {
				fail("a repeated report changed the pending decision %+v", m.pending)
			}
			return
		}
	case PhaseCrashloop:
		if d.Action != ActCrashloop {
			fail("left crashloop by itself")
		}
		return
	case PhaseEnded:
		if d.Action != ActNone {
			fail("restarted an ended component")
		}
		return
	}
	if m.phase == PhaseRunning && !m.healthySince.IsZero() && now.Sub(m.healthySince) >= m.p.ResetAfter {
		m.attempt = 0
	}
	m.healthySince = time.Time{}
	if d.Reason != f.Reason() {
		fail("reason %q, want %q", d.Reason, f.Reason())
	}
	if !m.restarts(f) {
		if d.Action != ActNone {
			fail("policy %s restarted after %s", m.p.Name, f.Reason())
		}
		m.phase = PhaseEnded
		return
	}
	n := m.attempt + 1
	if m.p.MaxRetries >= 0 && n > m.p.MaxRetries {
		if d.Action != ActCrashloop || d.Attempt != m.attempt {
			fail("want crashloop after %d restarts", m.attempt)
		}
		m.phase = PhaseCrashloop
		return
	}
	if d.Action != ActRestart || d.Attempt != n {
		fail("want restart attempt %d", n)
	}
	base := m.base(n)
	lo, hi := time.Duration(float64(base)*(1-m.p.Jitter)), min(time.Duration(float64(base)*(1+m.p.Jitter)), m.p.Max)
	if d.Delay < lo-2 || d.Delay > hi+2 { // rounding of the step-by-step model
		fail("delay outside [%v, %v] (base %v)", lo, hi, base)
	}
	if !d.At.Equal(now.Add(d.Delay)) {
		fail("due at %v, want now+delay", d.At)
	}
	m.attempt, m.phase, m.pending = n, PhaseBackoff, d
}

func randomFailure(rng *rand.Rand) Failure {
	switch rng.IntN(6) {
	case 0:
		return Exited(0)
	case 1:
		return Exited(1 + rng.IntN(255))
	case 2:
		return Signaled("SIGKILL")
	case 3:
		return LivenessFailed(1 + rng.IntN(5))
	case 4:
		return HeartbeatMissed(time.Duration(rng.IntN(300)) * time.Second)
	}
	return StartFailed(errors.New("engine unreachable"))
}

func randomPolicy(rng *rand.Rand) Policy {
	names := []string{config.RestartNever, config.RestartOnFailure, config.RestartAlways}
	p := Policy{
		Name:       names[rng.IntN(len(names))],
		MaxRetries: rng.IntN(8) - 1, // -1 (no limit) .. 6
		Initial:    []time.Duration{0, 10 * time.Millisecond, time.Second, 3 * time.Second}[rng.IntN(4)],
		Multiplier: []float64{1, 1.5, 2, 3}[rng.IntN(4)],
		Jitter:     DefaultJitter,
		ResetAfter: DefaultResetAfter,
	}
	p.Max = p.Initial + time.Duration(rng.IntN(600))*time.Second
	return p
}

// randomAdvance is mostly short, sometimes long enough for a reset.
func randomAdvance(rng *rand.Rand) time.Duration {
	if rng.IntN(10) == 0 {
		return time.Duration(rng.Int64N(int64(20 * time.Minute)))
	}
	return time.Duration(rng.Int64N(int64(10 * time.Second)))
}

// TestRandomHistoriesFollowThePolicy drives a tracker through random
// sequences of failures, waits, restarts, health reports and deliberate
// starts, and checks each decision against the model. A twin tracker is
// persisted and restored (JSON round trip, as serve does) at random
// points: it must decide exactly as the one that never restarted.
func TestRandomHistoriesFollowThePolicy(t *testing.T) {
	seen := map[string]int{} // what the histories covered, checked at the end
	histories := uint64(300)
	if testing.Short() {
		histories = 60
	}
	for seed := range histories {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := newHistory(t, seed, seen)
			for i := range 400 {
				h.step(fmt.Sprintf("seed %d step %d policy %+v", seed, i, h.p))
			}
		})
	}
	for _, what := range []string{"restart", "crashloop", "none", "streak reset after a healthy run", "delay at the cap", "persisted mid-backoff", "persisted mid-crashloop"} {
		if seen[what] == 0 {
			t.Errorf("no random history covered %q: %v", what, seen)
		}
	}
	t.Logf("covered: %v", seen)
}

// history is one random history: the tracker a that never restarts, its
// twin b that is persisted and restored, and the model both must follow.
type history struct {
	t     *testing.T
	rng   *rand.Rand
	p     Policy
	c     *fakeClock
	draws []float64
	a, b  *Tracker
	rb    *seqRand
	m     *model
	seen  map[string]int
}

func newHistory(t *testing.T, seed uint64, seen map[string]int) *history {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	p := randomPolicy(rng)
	c := newClock()
	draws := make([]float64, 64)
	for i := range draws {
		draws[i] = rng.Float64()
	}
	ra, rb := &seqRand{vals: draws}, &seqRand{vals: draws}
	return &history{
		t: t, rng: rng, p: p, c: c, draws: draws,
		a: New(p, c, ra), b: New(p, c, rb), rb: rb,
		m: &model{p: p, phase: PhaseRunning}, seen: seen,
	}
}

// step makes one random move, then checks that both trackers agree with
// the model and with each other.
func (h *history) step(step string) {
	switch op := h.rng.IntN(10); {
	case op < 3:
		h.c.Advance(randomAdvance(h.rng))
	case op < 5:
		h.healthy()
	case op < 8:
		h.fail(step)
	case op < 9:
		h.restartWhenDue(step)
	default:
		if h.rng.IntN(4) == 0 { // apply started it deliberately
			h.a.Reset()
			h.b.Reset()
			h.m.phase, h.m.attempt, h.m.healthySince = PhaseRunning, 0, time.Time{}
		}
	}
	if h.a.Status().Phase != h.m.phase {
		h.t.Fatalf("%s: phase %s, model %s", step, h.a.Status().Phase, h.m.phase)
	}
	if h.rng.IntN(5) == 0 { // serve restarts
		h.restoreTwin()
	}
	ja, _ := h.a.State().Marshal()
	jb, _ := h.b.State().Marshal()
	if !bytes.Equal(ja, jb) {
		h.t.Fatalf("%s: states differ\noriginal %s\nrestored %s", step, ja, jb)
	}
}

func (h *history) healthy() {
	h.a.Healthy()
	h.b.Healthy()
	if h.m.phase == PhaseRunning && h.m.healthySince.IsZero() {
		h.m.healthySince = h.c.Now()
	}
}

// fail reports a random failure to both trackers and checks the decision.
func (h *history) fail(step string) {
	f := randomFailure(h.rng)
	if f.Kind == KindStartFailed && h.m.phase != PhaseBackoff {
		f = Exited(1) // only a pending attempt can fail to start
	}
	da, db := h.a.Failed(f), h.b.Failed(f)
	if !sameDecision(da, db) {
		h.t.Fatalf("%s: restored twin decided %+v, the original %+v", step, db, da)
	}
	before := h.m.attempt
	h.m.check(h.t, step, h.c.Now(), f, da)
	h.seen[string(da.Action)]++
	if da.Action == ActRestart && da.Attempt == 1 && before > 0 {
		h.seen["streak reset after a healthy run"]++
	}
	if da.Action == ActRestart && da.Delay == h.p.Max && h.p.Max > 0 {
		h.seen["delay at the cap"]++
	}
	if h.p.Name == config.RestartNever && da.Action == ActRestart {
		h.t.Fatalf("%s: never restarted", step)
	}
	if w := h.a.Wait(); w < 0 || w > da.Delay {
		h.t.Fatalf("%s: wait %v outside [0, %v]", step, w, da.Delay)
	}
}

// restartWhenDue is the loop waiting out the delay, then starting the
// instance.
func (h *history) restartWhenDue(step string) {
	if h.m.phase != PhaseBackoff {
		return
	}
	h.c.Advance(h.a.Wait())
	if h.a.Wait() != 0 || h.b.Wait() != 0 {
		h.t.Fatalf("%s: still waiting when due", step)
	}
	h.a.Restarted()
	h.b.Restarted()
	h.m.phase, h.m.healthySince = PhaseRunning, time.Time{}
}

// restoreTwin persists the twin and restores it, as serve does when it
// restarts, with the same future jitter draws.
func (h *history) restoreTwin() {
	h.seen["persisted mid-"+string(h.m.phase)]++
	raw, err := h.b.State().Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := UnmarshalState(raw)
	if err != nil {
		h.t.Fatal(err)
	}
	h.rb = &seqRand{vals: h.draws, i: h.rb.i}
	h.b = Restore(h.p, h.c, h.rb, st)
}
