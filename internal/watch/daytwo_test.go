package watch

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/state"
)

// restartAgain is a new watcher over the same state, as after a restart
// of serve, its clock moved on by gap.
func (l *loop) restartAgain(gap time.Duration) {
	l.clock.Advance(gap)
	l.r = NewReconciler(Options{Store: l.store, Providers: l.reg, Engine: l.eng, Clock: l.clock, Rand: fixedRand(0.5), Registrations: l.registrations})
}

// beating is a's registration as the control plane's registry holds it:
// it has beaten every second, the last time at last, and is not alive.
func (l *loop) beating(last time.Time) {
	rec := l.record()
	l.regs = []controlplane.Registration{{
		ServiceID: "svc-a", Component: "source.a", InstanceID: rec.InstanceID, Heartbeats: 5,
		RegisteredAt: rec.StartedAt.Add(time.Millisecond), LastHeartbeat: last, Cadence: config.Duration(time.Second),
	}}
}

func TestAFailedRestartIsCountedWithItsNewInstanceUntilCrashloop(t *testing.T) {
	l := newLoop(t, "  restart {\n    policy = \"always\"\n    max_retries = 2\n    backoff {\n      initial = \"1s\"\n    }\n  }")
	first := l.record().InstanceID
	l.fake.Exit(l.current(), 1)
	if got := l.look(); got != "backoff 1; failed: exited code=1; restart 1 in 1s (exit 1); again in 1s" {
		t.Fatalf("after the exit: %s", got)
	}
	// Every new instance fails its readiness: a start that does not take.
	l.fake.NeverReady("source.a")
	l.clock.Advance(time.Second)
	got := l.look()
	second := l.record().InstanceID
	if second == first || l.r.trackers["source.a"].instance != second {
		t.Fatalf("the watcher does not follow the failed restart's instance %s (state %s, tracked %s); %s; %q", second, l.record().InstanceID, l.r.trackers["source.a"].instance, got, l.fake.Ops(providertest.OpStart, providertest.OpStop))
	}
	if !strings.HasPrefix(got, "backoff 2; failed: start failed: not ready") || !strings.HasSuffix(got, "restart 2 in 2s; again in 2s") {
		t.Fatalf("after the first failed restart: %s", got)
	}
	// A look before the delay, at the new instance: no reset, no restart.
	if got := l.look(); !strings.HasPrefix(got, "backoff 2;") {
		t.Fatalf("the new instance reset the streak: %s", got)
	}
	l.clock.Advance(2 * time.Second)
	if got := l.look(); !strings.HasPrefix(got, "crashloop 2; crashloop: start failed: not ready") {
		t.Fatalf("after the second failed restart: %s", got)
	}
	for range 3 {
		l.clock.Advance(time.Minute)
		l.look()
	}
	if starts := l.fake.Ops(providertest.OpStart); len(starts) != 2 {
		t.Fatalf("starts %q, want the two attempts", starts)
	}
	h := l.watcherHistory()
	if len(h) != 3 || !strings.HasPrefix(h[0], "restart failed: exited code=1, attempt 1, delay 1s") ||
		!strings.HasPrefix(h[1], "restart failed: start failed: not ready") || !strings.HasSuffix(h[1], "attempt 2, delay 2s") ||
		!strings.HasPrefix(h[2], "crashloop failed: start failed") {
		t.Fatalf("history, one row per attempt and the crash loop:\n%s", strings.Join(h, "\n"))
	}
}

func TestMissedHeartbeatsAreGivenAGraceAfterTheWatcherStarts(t *testing.T) {
	l := newLoop(t, onFailure)
	// Serve was down for a minute: the registry it reloads last heard of
	// a a minute ago.
	l.beating(l.clock.Now())
	l.restartAgain(time.Minute)
	if got := l.look(); got != "running 0; running" {
		t.Fatalf("at once after the watcher's start: %s", got)
	}
	// The grace: 3 intervals of 1s, and, as the silence began before the
	// watcher, twice the outage (a client's reconnects back off).
	// (The watcher looks every few seconds: a longer silence of its own
	// would be a gap.)
	for waited := time.Duration(0); waited < 119*time.Second; waited += 5 * time.Second {
		l.clock.Advance(5 * time.Second)
		if got := l.look(); got != "running 0; running" {
			t.Fatalf("within the grace, %s after the start: %s", waited, got)
		}
	}
	if ops := l.fake.Ops(providertest.OpStart, providertest.OpStop); len(ops) != 0 {
		t.Fatalf("restarted within the grace: %q", ops)
	}
	// Past the grace and still silent: restarted, but its silence began
	// while nobody listened: not counted.
	l.clock.Advance(2 * time.Second)
	if got := l.look(); got != "running 0; running" {
		t.Fatalf("past the grace: %s", got)
	}
	h := l.watcherHistory()
	if len(h) != 1 || !strings.Contains(h[0], "while the control plane was not watching (not counted), attempt 0") {
		t.Fatalf("history %q", h)
	}
}

func TestAMissedHeartbeatTheWatcherHeardStopIsCounted(t *testing.T) {
	l := newLoop(t, onFailure)
	l.clock.Advance(10 * time.Second)
	l.look()
	l.beating(l.clock.Now())
	l.clock.Advance(5 * time.Second)
	if got := l.look(); !strings.HasPrefix(got, "backoff 1; failed: heartbeat missed for 5s; restart 1 in 2s") {
		t.Fatalf("a silence the watcher heard begin: %s", got)
	}
}

func TestFailuresFoundWhenTheWatcherStartsAreNotCountedAgainstMaxRetries(t *testing.T) {
	l := newLoop(t, "  restart {\n    policy = \"on-failure\"\n    max_retries = 1\n    backoff {\n      initial = \"1s\"\n    }\n  }")
	for i := range 4 {
		// The component dies while serve is down, again and again.
		l.fake.Exit(l.current(), 1)
		l.restartAgain(time.Minute)
		if got := l.look(); got != "running 0; running" {
			t.Fatalf("serve restart %d: %s", i+1, got)
		}
	}
	h := l.watcherHistory()
	if len(h) != 4 || h[3] != "restart ok: exited code=1 while the control plane was not watching (not counted), attempt 0, delay 0s" {
		t.Fatalf("history %q", h)
	}
	// One the watcher sees is counted as ever.
	l.fake.Exit(l.current(), 1)
	if got := l.look(); got != "backoff 1; failed: exited code=1; restart 1 in 1s (exit 1); again in 1s" {
		t.Fatalf("a failure the watcher saw: %s", got)
	}
}

func TestAFailedReplaceIsLeftAsItIsAndNeverRolledBack(t *testing.T) {
	l := newLoop(t, "  restart {\n    policy = \"always\"\n    backoff {\n      initial = \"1s\"\n    }\n  }")
	old := l.record()
	// The old instance ended; the watcher has a restart pending for it when
	// an apply replaces it with a spec its executor refuses.
	l.fake.Exit(l.current(), 0)
	if got := l.look(); !strings.HasPrefix(got, "backoff 1;") {
		t.Fatalf("after the exit: %s", got)
	}
	l.desired.Components[0].Env = map[string]config.EnvValue{"MODE": {Value: "new"}}
	l.fake.FailStart("source.a", errors.New("no such image: demo:2"))
	in := plan.Input{Desired: l.desired, Providers: l.reg}
	if err := l.store.View(func(tx *state.Tx) error {
		in.Meta = tx.Meta()
		var err error
		in.Records, err = tx.Components()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Make(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.String(), "replace") {
		t.Fatalf("plan %s", p)
	}
	if _, err := l.eng.Apply(context.Background(), nil, p, l.desired, apply.Options{}); err == nil {
		t.Fatal("the replace did not fail")
	}
	rec := l.record()
	if len(rec.Handle) != 0 || rec.Status != "failed" || rec.StatusReason != "replace failed: start: no such image: demo:2" || rec.SpecHash == old.SpecHash {
		t.Fatalf("state after the failed replace: %+v", rec)
	}
	l.fake.ResetCalls()
	for range 3 {
		l.clock.Advance(time.Minute)
		l.look()
	}
	if ops := l.fake.Ops(providertest.OpStart, providertest.OpStop); len(ops) != 0 {
		t.Fatalf("the watcher acted on a failed replace: %q", ops)
	}
	if rec := l.record(); rec.Status != "failed" || len(rec.Handle) != 0 {
		t.Fatalf("state after the watcher's looks: %+v", rec)
	}
	if h := l.watcherHistory(); slices.ContainsFunc(h, func(s string) bool { return strings.HasPrefix(s, "restart ") }) {
		t.Fatalf("the watcher restarted something: %q", h)
	}
}
