package watch

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ now time.Time }

func newClock() *fakeClock { return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// fixedRand always draws the same value.
type fixedRand float64

func (r fixedRand) Float64() float64 { return float64(r) }

// seqRand draws from a list, cycling; its position is copyable, so a
// restored tracker can be given the same future draws.
type seqRand struct {
	vals []float64
	i    int
}

func (r *seqRand) Float64() float64 {
	v := r.vals[r.i%len(r.vals)]
	r.i++
	return v
}

// sameDecision compares decisions by value, exit code included.
func sameDecision(a, b Decision) bool {
	ea, eb := a.ExitCode, b.ExitCode
	a.ExitCode, b.ExitCode = nil, nil
	return a == b && (ea == nil) == (eb == nil) && (ea == nil || *ea == *eb)
}

// policy is the normalised default restart block of policy name, as the
// loaders produce it.
func policy(t *testing.T, name string) Policy {
	t.Helper()
	restart := ""
	if name != "" {
		restart = fmt.Sprintf("  restart {\n    policy = %q\n  }\n", name)
	}
	src := fmt.Sprintf("pipeline \"p\" {\n  executor = \"process\"\n}\n\nsource \"x\" {\n  command = [\"x\"]\n%s}\n", restart)
	p, diags := config.LoadBytes([]byte(src), "p.hcl", config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("load %q: %v", src, diags)
	}
	return PolicyOf(p.Components[0].Restart)
}

func TestReasonsAreSpelledAsHistoryShowsThem(t *testing.T) {
	for _, tc := range []struct {
		f    Failure
		want string
	}{
		{Exited(2), "exited code=2"},
		{Exited(0), "exited code=0"},
		{Signaled("SIGKILL"), "killed by SIGKILL"},
		{LivenessFailed(3), "liveness failed 3×"},
		{HeartbeatMissed(31*time.Second + 400*time.Millisecond), "heartbeat missed for 31s"},
		{HeartbeatMissed(95 * time.Second), "heartbeat missed for 1m35s"},
		{StartFailed(errors.New("exec: no such file\nmore")), "start failed: exec: no such file"},
	} {
		if got := tc.f.Reason(); got != tc.want {
			t.Errorf("%+v: reason %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestNormalisedDefaultsGiveFiveRetriesForOnFailureAndNoLimitForAlways(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		retries      int
	}{
		{"on-failure", config.RestartOnFailure, 5},
		{"always", config.RestartAlways, config.UnlimitedRetries},
		{"unless-stopped", config.RestartAlways, config.UnlimitedRetries},
		{"never", config.RestartNever, 0},
		{"", config.RestartOnFailure, 5},
	} {
		p := policy(t, tc.name)
		if p.Name != tc.policy || p.MaxRetries != tc.retries {
			t.Errorf("%q: policy %s max_retries %d, want %s %d", tc.name, p.Name, p.MaxRetries, tc.policy, tc.retries)
		}
		if p.Initial != time.Second || p.Max != 5*time.Minute || p.Multiplier != 2 || p.Jitter != 0.1 || p.ResetAfter != 10*time.Minute {
			t.Errorf("%q: backoff %+v, want 1s ×2 up to 5m, ±10%%, reset after 10m", tc.name, p)
		}
	}
}

func TestWhichFailuresEachPolicyRestarts(t *testing.T) {
	failures := map[string]Failure{
		"exit 0": Exited(0), "exit 2": Exited(2), "signal": Signaled("SIGKILL"),
		"liveness": LivenessFailed(3), "heartbeat": HeartbeatMissed(31 * time.Second),
		"start": StartFailed(errors.New("boom")),
	}
	want := map[string]map[string]bool{
		config.RestartNever:     {},
		config.RestartOnFailure: {"exit 2": true, "signal": true, "liveness": true, "heartbeat": true, "start": true},
		config.RestartAlways:    {"exit 0": true, "exit 2": true, "signal": true, "liveness": true, "heartbeat": true, "start": true},
	}
	for pol, restarts := range want {
		for name, f := range failures {
			tr := New(policy(t, pol), newClock(), fixedRand(0.5))
			d := tr.Failed(f)
			wantAct := ActNone
			if restarts[name] {
				wantAct = ActRestart
			}
			if d.Action != wantAct {
				t.Errorf("%s after %s: %s, want %s", pol, name, d.Action, wantAct)
			}
			if d.Reason != f.Reason() {
				t.Errorf("%s after %s: reason %q", pol, name, d.Reason)
			}
		}
	}
}

func TestBaseDelayDoublesFromOneSecondUpToFiveMinutes(t *testing.T) {
	p := policy(t, config.RestartAlways)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
	for i, w := range want {
		if got := p.BaseDelay(i + 1); got != w*time.Second {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w*time.Second)
		}
	}
	for _, n := range []int{64, 1100, 1 << 30, math.MaxInt} {
		if got := p.BaseDelay(n); got != 5*time.Minute {
			t.Errorf("attempt %d: %v, want the cap", n, got)
		}
	}
	p.Initial = 0
	if got := p.Delay(7, 0.99); got != 0 {
		t.Errorf("initial 0: delay %v, want 0 (restart at once)", got)
	}
	p = Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 1.5, Jitter: 0.1}
	for n, w := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 150 * time.Millisecond, 3: 225 * time.Millisecond, 7: time.Second} {
		if got := p.BaseDelay(n); got != w {
			t.Errorf("×1.5, attempt %d: %v, want %v", n, got, w)
		}
	}
}

func TestJitterStaysWithinTenPercentAndNeverAboveTheCap(t *testing.T) {
	p := policy(t, config.RestartAlways)
	for n, tc := range []struct {
		r    float64
		want time.Duration
	}{
		{0, 7200 * time.Millisecond},
		{0.5, 8 * time.Second},
		{0.75, 8400 * time.Millisecond},
	} {
		if got := p.Delay(4, tc.r); got != tc.want {
			t.Errorf("case %d: delay(4, %v) = %v, want %v", n, tc.r, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		n := 1 + rng.IntN(20)
		base := p.BaseDelay(n)
		d := p.Delay(n, rng.Float64())
		lo := time.Duration(float64(base) * 0.9)
		hi := min(time.Duration(float64(base)*1.1), p.Max)
		if d < lo || d > hi {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, lo, hi)
		}
	}
	if got := p.Delay(30, 0.999999); got != p.Max {
		t.Errorf("at the cap with high jitter: %v, want exactly %v", got, p.Max)
	}
	if got := p.Delay(30, 0); got != time.Duration(float64(p.Max)*0.9) {
		t.Errorf("at the cap with low jitter: %v, want 90%% of the cap", got)
	}
}

func TestNeverPolicyRestartsNothing(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartNever), c, fixedRand(0.5))
	d := tr.Failed(Exited(1))
	if d.Action != ActNone || tr.State().Phase != PhaseEnded {
		t.Fatalf("never after exit 1: %+v, phase %s", d, tr.State().Phase)
	}
	c.Advance(time.Hour)
	if d := tr.Failed(Signaled("SIGKILL")); d.Action != ActNone {
		t.Fatalf("never, reported again: %+v", d)
	}
	if _, ok := tr.Pending(); ok || tr.Wait() != 0 {
		t.Fatal("never: a restart is pending")
	}
}

func TestCleanExitUnderOnFailureIsLeftAlone(t *testing.T) {
	tr := New(policy(t, config.RestartOnFailure), newClock(), fixedRand(0.5))
	d := tr.Failed(Exited(0))
	if d.Action != ActNone || d.Reason != "exited code=0" || d.ExitCode == nil || *d.ExitCode != 0 {
		t.Fatalf("on-failure after exit 0: %+v", d)
	}
	if s := tr.Status(); s.Phase != PhaseEnded || s.String() != "ended: exited code=0" {
		t.Fatalf("status %+v %q", s, s.String())
	}
}

// crashUntilDecided fails the component, waits out the delay, restarts
// it, and repeats, until a decision is not a restart; it returns every
// decision.
func crashUntilDecided(tr *Tracker, c *fakeClock, f Failure, limit int) []Decision {
	var out []Decision
	for range limit {
		d := tr.Failed(f)
		out = append(out, d)
		if d.Action != ActRestart {
			return out
		}
		c.Advance(tr.Wait())
		tr.Restarted()
		c.Advance(200 * time.Millisecond) // it runs a little, then crashes
	}
	return out
}

func TestOnFailureRestartsFiveTimesWithDoublingDelaysThenCrashloops(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartOnFailure), c, fixedRand(0.5))
	ds := crashUntilDecided(tr, c, Exited(2), 100)
	if len(ds) != 6 {
		t.Fatalf("%d decisions, want 5 restarts and a crashloop: %+v", len(ds), ds)
	}
	for i, d := range ds[:5] {
		want := time.Second << i
		if d.Action != ActRestart || d.Attempt != i+1 || d.Delay != want || d.Reason != "exited code=2" {
			t.Errorf("decision %d: %+v, want restart attempt %d after %v", i, d, i+1, want)
		}
	}
	last := ds[5]
	if last.Action != ActCrashloop || last.Attempt != 5 || *last.ExitCode != 2 {
		t.Fatalf("last decision %+v, want crashloop after 5", last)
	}
	st := tr.Status()
	if st.Phase != PhaseCrashloop || st.String() != "crashloop: exited code=2 after 5 restarts" {
		t.Fatalf("status %q", st.String())
	}
	// Nothing brings it back by itself, however long we wait.
	c.Advance(24 * time.Hour)
	if d := tr.Failed(Exited(2)); d.Action != ActCrashloop {
		t.Fatalf("crashloop reported again: %+v", d)
	}
	tr.Healthy()
	if tr.State().HealthySince != (time.Time{}) {
		t.Fatal("Healthy during a crashloop started the stability period")
	}
}

func TestAlwaysRestartsWithoutLimitAndTheDelayStaysAtTheCap(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartAlways), c, fixedRand(0.5))
	ds := crashUntilDecided(tr, c, Exited(0), 1000)
	if len(ds) != 1000 {
		t.Fatalf("always stopped restarting after %d: %+v", len(ds), ds[len(ds)-1])
	}
	for i, d := range ds {
		if d.Action != ActRestart || d.Attempt != i+1 || d.Delay > 5*time.Minute {
			t.Fatalf("decision %d: %+v", i, d)
		}
	}
	if ds[999].Delay != 5*time.Minute {
		t.Fatalf("late delay %v, want the cap", ds[999].Delay)
	}
}

func TestMaxRetriesOfAlwaysIsHonouredWhenSet(t *testing.T) {
	c := newClock()
	p := policy(t, config.RestartAlways)
	p.MaxRetries = 2
	ds := crashUntilDecided(New(p, c, fixedRand(0.5)), c, Exited(0), 10)
	if len(ds) != 3 || ds[2].Action != ActCrashloop {
		t.Fatalf("decisions %+v, want 2 restarts then crashloop", ds)
	}
}

func TestZeroMaxRetriesCrashloopsAtTheFirstFailure(t *testing.T) {
	p := policy(t, config.RestartOnFailure)
	p.MaxRetries = 0
	if d := New(p, newClock(), fixedRand(0.5)).Failed(Exited(1)); d.Action != ActCrashloop || d.Attempt != 0 {
		t.Fatalf("max_retries 0: %+v", d)
	}
}

func TestStreakResetsOnlyAfterTenMinutesRunningHealthy(t *testing.T) {
	for _, tc := range []struct {
		healthyFor  time.Duration
		wantAttempt int
	}{
		{10*time.Minute - time.Nanosecond, 4},
		{10 * time.Minute, 1},
		{3 * time.Hour, 1},
	} {
		c := newClock()
		tr := New(policy(t, config.RestartAlways), c, fixedRand(0.5))
		crashUntilDecided(tr, c, Exited(3), 3)
		c.Advance(time.Minute) // running, not yet healthy: does not count
		tr.Healthy()
		c.Advance(tc.healthyFor / 2)
		tr.Healthy() // later calls do not move the start of the period
		c.Advance(tc.healthyFor - tc.healthyFor/2)
		if tc.wantAttempt == 1 && tr.Status().Attempt != 0 {
			t.Errorf("healthy for %v: status attempt %d, want 0", tc.healthyFor, tr.Status().Attempt)
		}
		d := tr.Failed(Exited(3))
		if d.Attempt != tc.wantAttempt {
			t.Errorf("healthy for %v: attempt %d, want %d", tc.healthyFor, d.Attempt, tc.wantAttempt)
		}
		if want := time.Second << (tc.wantAttempt - 1); d.Delay != want {
			t.Errorf("healthy for %v: delay %v, want %v", tc.healthyFor, d.Delay, want)
		}
	}
}

func TestRunningWithoutHealthNeverResetsTheStreak(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartAlways), c, fixedRand(0.5))
	crashUntilDecided(tr, c, Exited(3), 2)
	c.Advance(time.Hour) // running an hour, but never seen healthy
	if d := tr.Failed(LivenessFailed(3)); d.Attempt != 3 {
		t.Fatalf("attempt %d, want 3", d.Attempt)
	}
}

func TestADeliberateStartAfterCrashloopStartsAFreshStreak(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartOnFailure), c, fixedRand(0.5))
	crashUntilDecided(tr, c, Exited(2), 100)
	if tr.State().Phase != PhaseCrashloop {
		t.Fatal("not in crashloop")
	}
	tr.Reset() // apply started it again
	tr.Healthy()
	d := tr.Failed(Exited(2))
	if d.Action != ActRestart || d.Attempt != 1 || d.Delay != time.Second {
		t.Fatalf("after a reset: %+v, want attempt 1 after 1s", d)
	}
}

func TestTheSameEndReportedTwiceIsDecidedOnce(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartOnFailure), c, fixedRand(0.5))
	first := tr.Failed(Exited(2))
	c.Advance(300 * time.Millisecond) // the safety poll sees it too
	again := tr.Failed(Exited(2))
	if !sameDecision(again, first) {
		t.Fatalf("second report %+v, want the first decision %+v", again, first)
	}
	if tr.Wait() != 700*time.Millisecond {
		t.Fatalf("wait %v, want 700ms", tr.Wait())
	}
}

func TestAFailedStartDuringBackoffIsTheNextFailure(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartOnFailure), c, fixedRand(0.5))
	tr.Failed(Exited(2))
	c.Advance(tr.Wait())
	d := tr.Failed(StartFailed(errors.New("image not found")))
	if d.Action != ActRestart || d.Attempt != 2 || d.Delay != 2*time.Second || d.Reason != "start failed: image not found" {
		t.Fatalf("after a failed start: %+v", d)
	}
	if !d.At.Equal(c.Now().Add(2 * time.Second)) {
		t.Fatalf("due at %v, want now+2s", d.At)
	}
}

func TestStatusShowsReasonExitCodeAndNextAttempt(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartOnFailure), c, fixedRand(0.5))
	crashUntilDecided(tr, c, Exited(2), 2)
	tr.Failed(Exited(2)) // attempt 3, 4s
	c.Advance(300 * time.Millisecond)
	s := tr.Status()
	if s.Phase != PhaseBackoff || s.Attempt != 3 || *s.ExitCode != 2 || s.In != 3700*time.Millisecond {
		t.Fatalf("status %+v", s)
	}
	if got, want := s.String(), "backoff: exited code=2, attempt 3 of 5, next attempt in 4s"; got != want {
		t.Fatalf("status %q, want %q", got, want)
	}
	c.Advance(3400 * time.Millisecond)
	if got := tr.Status().NextAttemptText(); got != "next attempt in 300ms" {
		t.Fatalf("%q", got)
	}
	c.Advance(time.Second)
	if got := tr.Status().NextAttemptText(); got != "next attempt now" {
		t.Fatalf("%q", got)
	}
	tr.Restarted()
	if got := tr.Status().String(); got != "running (restarted 3× in this streak; last: exited code=2)" {
		t.Fatalf("%q", got)
	}
	al := New(policy(t, config.RestartAlways), c, fixedRand(0.5))
	al.Failed(HeartbeatMissed(31 * time.Second))
	if got := al.Status().String(); got != "backoff: heartbeat missed for 31s, attempt 1, next attempt in 1s" {
		t.Fatalf("%q", got)
	}
}

func TestWatcherRestartMidBackoffContinuesTheSchedule(t *testing.T) {
	c := newClock()
	tr := New(policy(t, config.RestartOnFailure), c, fixedRand(0.5))
	crashUntilDecided(tr, c, Exited(2), 3) // attempts 1..3 made
	d := tr.Failed(Exited(2))              // attempt 4, due in 8s
	c.Advance(3 * time.Second)

	b, err := tr.State().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// serve dies here and comes back 2s later with a fresh process.
	c.Advance(2 * time.Second)
	st, err := UnmarshalState(b)
	if err != nil {
		t.Fatal(err)
	}
	back := Restore(policy(t, config.RestartOnFailure), c, fixedRand(0.5), st)
	if at, ok := back.Pending(); !ok || !at.Equal(d.At) {
		t.Fatalf("pending %v %v, want %v", at, ok, d.At)
	}
	if back.Wait() != 3*time.Second {
		t.Fatalf("wait %v, want the 3s left of the 8s", back.Wait())
	}
	if again := back.Failed(Exited(2)); !sameDecision(again, d) {
		t.Fatalf("the restored tracker decided again: %+v, want %+v", again, d)
	}
	c.Advance(back.Wait())
	back.Restarted()
	next := back.Failed(Exited(2))
	if next.Attempt != 5 || next.Delay != 16*time.Second {
		t.Fatalf("after the restore: %+v, want attempt 5 after 16s", next)
	}
	c.Advance(next.Delay)
	back.Restarted()
	if last := back.Failed(Exited(2)); last.Action != ActCrashloop {
		t.Fatalf("%+v, want crashloop", last)
	}

	// A crashloop survives a restart of the watcher too.
	b, _ = back.State().Marshal()
	st, _ = UnmarshalState(b)
	if d := Restore(back.Policy(), c, fixedRand(0.5), st).Failed(Exited(2)); d.Action != ActCrashloop {
		t.Fatalf("restored crashloop decided %+v", d)
	}
}

func TestUnmarshalStateRejectsGarbage(t *testing.T) {
	if _, err := UnmarshalState([]byte("{")); err == nil {
		t.Fatal("no error")
	}
}

func TestLivenessFailsAfterThresholdConsecutiveFailures(t *testing.T) {
	l := Liveness{Threshold: 3}
	for i, ok := range []bool{false, false, true, false, false} {
		if _, failed := l.Probe(ok); failed {
			t.Fatalf("probe %d: failed early", i)
		}
	}
	f, failed := l.Probe(false)
	if !failed || f.Reason() != "liveness failed 3×" {
		t.Fatalf("third failure in a row: %v %q", failed, f.Reason())
	}
}

func TestHeartbeatMissedAfterThreeCadences(t *testing.T) {
	c := newClock()
	h := Heartbeat{Declared: 10 * time.Second}
	if _, missed := h.Missed(c.Now().Add(time.Hour)); missed {
		t.Fatal("missed before the first beat")
	}
	h.Beat(c.Now())
	c.Advance(30 * time.Second)
	if _, missed := h.Missed(c.Now()); missed {
		t.Fatal("30s of silence at a 10s cadence is not yet missed")
	}
	c.Advance(time.Second)
	f, missed := h.Missed(c.Now())
	if !missed || f.Reason() != "heartbeat missed for 31s" {
		t.Fatalf("%v %q", missed, f.Reason())
	}

	// An SDK component beats every 30s whatever it was told: learn it.
	sdk := Heartbeat{Declared: 10 * time.Second}
	for range 4 {
		sdk.Beat(c.Now())
		c.Advance(30 * time.Second)
	}
	if sdk.Cadence() != 30*time.Second {
		t.Fatalf("cadence %v, want 30s", sdk.Cadence())
	}
	c.Advance(59 * time.Second) // 89s of silence
	if _, missed := sdk.Missed(c.Now()); missed {
		t.Fatal("missed within 3×30s")
	}
	c.Advance(2 * time.Second)
	if f, missed := sdk.Missed(c.Now()); !missed || f.Reason() != "heartbeat missed for 1m31s" {
		t.Fatalf("%v %q", missed, f.Reason())
	}
	sdk.Beat(c.Now().Add(-time.Hour)) // a late, out-of-order beat moves nothing back
	if _, missed := sdk.Missed(c.Now()); !missed {
		t.Fatal("an old beat hid the silence")
	}
}
