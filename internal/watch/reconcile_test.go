package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/state"
)

// loop is a reconciler over a real state file and the fake executor, on a
// clock the test moves: one source "a", applied and running.
type loop struct {
	t     *testing.T
	store *state.Store
	fake  *providertest.Provider
	reg   *providers.Registry
	eng   *apply.Engine
	clock *fakeClock
	r     *Reconciler
	// desired is the pipeline applied.
	desired *config.Pipeline
	// regs is the control plane's registry as the test sets it.
	regs []controlplane.Registration
}

func (l *loop) registrations() []controlplane.Registration { return l.regs }

// newLoop applies source "a" with the given restart block and sets a
// reconciler on it, jitter-free.
func newLoop(t *testing.T, restart string) *loop {
	t.Helper()
	return newLoopOf(t, fmt.Sprintf("pipeline \"demo\" {}\nsource \"a\" {\n  command = [\"./a\"]\n%s\n}\n", restart))
}

// newLoopOf is newLoop for the pipeline src.
func newLoopOf(t *testing.T, src string) *loop {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "demo.state.db"), "demo")
	if err != nil {
		t.Fatal(err)
	}
	desired, diags := config.LoadBytes([]byte(src), "pipeline.hcl", config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	fake := providertest.New("process")
	reg := providers.NewRegistry(fake)
	port := 20000
	eng := apply.New(apply.Wiring{Store: store, Providers: reg, AllocPort: func() (int, error) { port++; return port, nil }})
	// The clock starts at the wall clock's now, as the engine stamps
	// starts with it, and the watcher is running before the apply: what
	// it sees end is its to count.
	l := &loop{t: t, store: store, fake: fake, reg: reg, eng: eng, clock: &fakeClock{now: time.Now().Add(-time.Second)}, desired: desired}
	l.r = NewReconciler(Options{Store: store, Providers: reg, Engine: eng, Clock: l.clock, Rand: fixedRand(0.5), Registrations: l.registrations})
	l.r.reconcile(context.Background())
	l.apply(plan.Options{})
	fake.ResetCalls()
	return l
}

// apply plans the desired pipeline with opts and applies it, as a user's
// apply would.
func (l *loop) apply(opts plan.Options) {
	l.t.Helper()
	in := plan.Input{Desired: l.desired, Providers: l.reg, Options: opts}
	if err := l.store.View(func(tx *state.Tx) error {
		in.Meta = tx.Meta()
		var err error
		in.Records, err = tx.Components()
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	p, err := plan.Make(context.Background(), in)
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.eng.Apply(context.Background(), nil, p, l.desired, apply.Options{}); err != nil {
		l.t.Fatal(err)
	}
}

// current is the handle of a's newest object.
func (l *loop) current() providers.Handle {
	l.t.Helper()
	h, ok := l.fake.Current("source.a")
	if !ok {
		l.t.Fatal("source.a has no object")
	}
	return h
}

// look runs one pass of the loop and describes what it left: the
// watcher's phase and attempt, a's status in state, and when the loop
// looks again, relative to now.
func (l *loop) look() string {
	l.t.Helper()
	next := l.r.reconcile(context.Background())
	st := l.r.Statuses()["source.a"]
	rec := l.record()
	s := fmt.Sprintf("%s %d; %s", st.Phase, st.Attempt, rec.Status)
	if rec.StatusReason != "" {
		s += ": " + rec.StatusReason
	}
	if rec.LastExitCode != nil {
		s += fmt.Sprintf(" (exit %d)", *rec.LastExitCode)
	}
	if !next.IsZero() {
		s += "; again in " + next.Sub(l.clock.Now()).String()
	}
	return s
}

func (l *loop) record() *state.Record {
	l.t.Helper()
	var rec *state.Record
	if err := l.store.View(func(tx *state.Tx) error {
		var err error
		rec, err = tx.Component("source.a")
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	return rec
}

// watcherHistory lists the watcher's history rows.
func (l *loop) watcherHistory() []string {
	l.t.Helper()
	var out []string
	if err := l.store.View(func(tx *state.Tx) error {
		evs, err := tx.History(0)
		for _, ev := range evs {
			if ev.Operation == lockOperation {
				out = append(out, fmt.Sprintf("%s %s: %s, attempt %d, delay %s", ev.Action, ev.Result, ev.Reason, ev.Attempt, ev.Delay))
			}
		}
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	return out
}

const onFailure = `  restart {
    policy = "on-failure"
    backoff {
      initial = "2s"
    }
  }`

func TestReconcilerDecidesByWhatItSeesAndThePolicy(t *testing.T) {
	tests := []struct {
		name    string
		restart string
		end     func(f *providertest.Provider, h providers.Handle)
		want    string
	}{
		{
			name:    "a running instance is left running",
			restart: onFailure,
			end:     func(*providertest.Provider, providers.Handle) {},
			want:    "running 0; running",
		},
		{
			name:    "an exit is restarted after the backoff",
			restart: onFailure,
			end:     func(f *providertest.Provider, h providers.Handle) { f.Exit(h, 3) },
			want:    "backoff 1; failed: exited code=3; restart 1 in 2s (exit 3); again in 2s",
		},
		{
			name:    "a kill names the signal and no exit code",
			restart: onFailure,
			end:     func(f *providertest.Provider, h providers.Handle) { f.Kill(h, "SIGKILL") },
			want:    "backoff 1; failed: killed by SIGKILL; restart 1 in 2s; again in 2s",
		},
		{
			name:    "the signal wins over the exit code the executor derived from it",
			restart: onFailure,
			end: func(f *providertest.Provider, h providers.Handle) {
				f.Exit(h, 137)
				f.Set(h, func(o *providers.Observed) { o.Signal = "SIGKILL" })
			},
			want: "backoff 1; failed: killed by SIGKILL; restart 1 in 2s; again in 2s",
		},
		{
			name:    "an object removed behind flowctl's back is a failure, and says so",
			restart: onFailure,
			end:     func(f *providertest.Provider, h providers.Handle) { f.Remove(h) },
			want:    "backoff 1; failed: removed (the object no longer exists); restart 1 in 2s; again in 2s",
		},
		{
			name:    "an object that never ran names what its executor says, not an exit code",
			restart: onFailure,
			end: func(f *providertest.Provider, h providers.Handle) {
				f.Set(h, func(o *providers.Observed) {
					o.Running, o.ExitCode, o.Detail = false, nil, "created but never started (container 0123)"
				})
			},
			want: "backoff 1; failed: not running: created but never started (container 0123); restart 1 in 2s; again in 2s",
		},
		{
			name:    "an exit still being written down is looked at again soon, not counted",
			restart: onFailure,
			end: func(f *providertest.Provider, h providers.Handle) {
				f.Set(h, func(o *providers.Observed) { o.Running, o.ExitPending = false, true })
			},
			want: "running 0; running; again in 50ms",
		},
		{
			name:    "a clean exit under on-failure is left as it ended",
			restart: onFailure,
			end:     func(f *providertest.Provider, h providers.Handle) { f.Exit(h, 0) },
			want:    "ended 0; running",
		},
		{
			name:    "policy never leaves a failure as it ended",
			restart: "  restart {\n    policy = \"never\"\n  }",
			end:     func(f *providertest.Provider, h providers.Handle) { f.Exit(h, 1) },
			want:    "ended 0; running",
		},
		{
			name:    "an executor that restarts its own is only observed",
			restart: onFailure,
			end: func(f *providertest.Provider, h providers.Handle) {
				f.SetRestartsItself(true)
				f.Exit(h, 1)
			},
			want: "running 0; running",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoop(t, tt.restart)
			tt.end(l.fake, l.current())
			if got := l.look(); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if ops := l.fake.Ops(providertest.OpStart, providertest.OpStop); len(ops) != 0 {
				t.Fatalf("acted before any backoff: %q", ops)
			}
			if l.fake.RestartsItself() && len(l.fake.Ops(providertest.OpObserve)) != 0 {
				t.Fatal("an executor that restarts its own was observed by the watcher")
			}
		})
	}
}

func TestReconcilerRestartsOnceTheBackoffIsDueAndRecordsTheAttempt(t *testing.T) {
	l := newLoop(t, onFailure)
	old := l.record()
	l.fake.Exit(l.current(), 3)
	l.look()
	l.clock.Advance(time.Second)
	if got := l.look(); got != "backoff 1; failed: exited code=3; restart 1 in 2s (exit 3); again in 1s" {
		t.Fatalf("before the delay: %s", got)
	}
	if ops := l.fake.Ops(providertest.OpStart); len(ops) != 0 {
		t.Fatalf("restarted before the delay: %q", ops)
	}
	l.clock.Advance(time.Second)
	if got := l.look(); got != "running 1; running" {
		t.Fatalf("once due: %s", got)
	}
	if got, want := l.fake.Ops(providertest.OpStart, providertest.OpStop), []string{"stop source.a", "start source.a"}; !slices.Equal(got, want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if rec := l.record(); rec.InstanceID == old.InstanceID || rec.RestartCount != 1 {
		t.Fatalf("state after the restart: %+v", rec)
	}
	if got, want := l.watcherHistory(), []string{"restart ok: exited code=3, attempt 1, delay 2s"}; !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
}

func TestReconcilerCrashloopsWhenRetriesAreSpentAndRecordsItOnce(t *testing.T) {
	l := newLoop(t, "  restart {\n    policy = \"always\"\n    max_retries = 1\n    backoff {\n      initial = \"0s\"\n    }\n  }")
	l.fake.Exit(l.current(), 1)
	if got := l.look(); got != "running 1; running" {
		t.Fatalf("first exit: %s", got)
	}
	l.fake.Exit(l.current(), 1)
	for range 3 {
		if got := l.look(); got != "crashloop 1; crashloop: exited code=1 after 1 restarts (exit 1)" {
			t.Fatalf("second exit: %s", got)
		}
	}
	if got := l.fake.Ops(providertest.OpStart); len(got) != 1 {
		t.Fatalf("starts %q, want the one restart", got)
	}
	want := []string{"restart ok: exited code=1, attempt 1, delay 0s", "crashloop failed: exited code=1, attempt 1, delay "}
	if got := l.watcherHistory(); !slices.Equal(got, want) {
		t.Fatalf("history %q, want %q", got, want)
	}
}

func TestReconcilerCountsAFailedRestartAsAnAttempt(t *testing.T) {
	l := newLoop(t, onFailure)
	l.fake.Exit(l.current(), 3)
	l.look()
	l.fake.FailStart("source.a", errors.New("exec: ./a: not found"))
	l.clock.Advance(2 * time.Second)
	l.look()
	if got := l.look(); !strings.HasPrefix(got, "backoff 2;") {
		t.Fatalf("after the failed restart: %s", got)
	}
	if st := l.r.Statuses()["source.a"]; st.Reason != "start failed: start: exec: ./a: not found" {
		t.Fatalf("reason %q", st.Reason)
	}
}

func TestAnApplysNewInstanceEndsTheStreak(t *testing.T) {
	l := newLoop(t, onFailure)
	l.fake.Exit(l.current(), 3)
	if got := l.look(); !strings.HasPrefix(got, "backoff 1;") {
		t.Fatalf("after the exit: %s", got)
	}
	l.apply(plan.Options{}) // plans a restart: the object is not running
	l.fake.ResetCalls()
	if got := l.look(); got != "running 0; running" {
		t.Fatalf("after the apply: %s", got)
	}
	l.clock.Advance(time.Minute)
	l.look()
	if ops := l.fake.Ops(providertest.OpStart, providertest.OpStop); len(ops) != 0 {
		t.Fatalf("the watcher still made its pending restart: %q", ops)
	}
	if got := l.watcherHistory(); len(got) != 0 {
		t.Fatalf("watcher history %q", got)
	}
}

func TestReconcilerRestartsWhatEndedTogetherInOneBatchEachByItsOwnStreak(t *testing.T) {
	const restart = `  restart {
    policy = "on-failure"
    backoff {
      initial = "0s"
    }
  }`
	var src strings.Builder
	src.WriteString("pipeline \"demo\" {}\n")
	for _, n := range []string{"a", "b", "c", "d"} {
		fmt.Fprintf(&src, "source %q {\n  command = [\"./%s\"]\n%s\n}\n", n, n, restart)
	}
	l := newLoopOf(t, src.String())
	instance := map[string]string{}
	for _, n := range []string{"a", "b", "c", "d"} {
		h, ok := l.fake.Current("source." + n)
		if !ok {
			t.Fatalf("source.%s has no object", n)
		}
		instance[n] = l.recordOf("source." + n).InstanceID
		if n != "d" {
			l.fake.Exit(h, 1)
		}
	}
	// b's restart fails: that is b's next failure, and only b's.
	l.fake.FailStart("source.b", errors.New("exec: ./b: not found"))
	l.r.reconcile(context.Background())

	st := l.r.Statuses()
	for _, n := range []string{"a", "c"} {
		if got := st["source."+n]; got.Phase != PhaseRunning || got.Attempt != 1 {
			t.Errorf("%s: %+v, want running after restart 1", n, got)
		}
		if rec := l.recordOf("source." + n); rec.InstanceID == instance[n] || rec.RestartCount != 1 || rec.Status != state.StatusRunning {
			t.Errorf("%s in state after the restart: %+v", n, rec)
		}
	}
	if got := st["source.b"]; got.Phase != PhaseBackoff || got.Attempt != 2 || !strings.Contains(got.Reason, "not found") {
		t.Errorf("b: %+v, want its failed restart counted as attempt 2", got)
	}
	if rec := l.recordOf("source.b"); rec.Status != state.StatusFailed || !strings.Contains(rec.StatusReason, "not found") {
		t.Errorf("b in state: %s: %s", rec.Status, rec.StatusReason)
	}
	if got := st["source.d"]; got.Phase != PhaseRunning || got.Attempt != 0 {
		t.Errorf("d, which kept running: %+v", got)
	}
	if rec := l.recordOf("source.d"); rec.InstanceID != instance["d"] {
		t.Error("d, which kept running, was restarted")
	}
	starts := l.fake.Ops(providertest.OpStart)
	slices.Sort(starts)
	if want := []string{"start source.a", "start source.b", "start source.c"}; !slices.Equal(starts, want) {
		t.Errorf("starts %q, want %q", starts, want)
	}
	// One history row per restart, each with its own attempt and reason.
	var rows []string
	if err := l.store.View(func(tx *state.Tx) error {
		evs, err := tx.History(0)
		for _, ev := range evs {
			if ev.Operation == lockOperation {
				rows = append(rows, fmt.Sprintf("%s %s %s: %s, attempt %d", ev.Address, ev.Action, ev.Result, ev.Reason, ev.Attempt))
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(rows)
	want := []string{
		"source.a restart ok: exited code=1, attempt 1",
		"source.b restart failed: exited code=1, attempt 1",
		"source.c restart ok: exited code=1, attempt 1",
	}
	if !slices.Equal(rows, want) {
		t.Errorf("history\n%q\nwant\n%q", rows, want)
	}
}

func (l *loop) recordOf(addr string) *state.Record {
	l.t.Helper()
	var rec *state.Record
	if err := l.store.View(func(tx *state.Tx) error {
		var err error
		rec, err = tx.Component(addr)
		return err
	}); err != nil || rec == nil {
		l.t.Fatalf("record of %s: %v", addr, err)
	}
	return rec
}

// savedInstance is the instance of a's tracker as saved in state ("" when
// none is).
func (l *loop) savedInstance() string {
	l.t.Helper()
	var inst string
	if err := l.store.View(func(tx *state.Tx) error {
		return tx.ForEachData(DataNamespace, func(k string, v []byte) error {
			if k == "source.a" {
				var st struct {
					Instance string `json:"instance"`
				}
				if err := json.Unmarshal(v, &st); err != nil {
					return err
				}
				inst = st.Instance
			}
			return nil
		})
	}); err != nil {
		l.t.Fatal(err)
	}
	return inst
}

// TestTrackersWaitWhileAnotherProcessWritesTheState: a pass that has only
// trackers to save does not write while another process is writing the
// state file (an apply's run of writes, played here by touching the file
// during the pass); the next pass that finds the file quiet saves them.
func TestTrackersWaitWhileAnotherProcessWritesTheState(t *testing.T) {
	l := newLoop(t, "")
	instance := l.record().InstanceID
	before := l.savedInstance()
	if before == instance {
		t.Fatalf("the tracker of the new instance %s is saved before the watcher looked", instance)
	}
	n := 0
	l.fake.OnObserve(func(providers.Observed) {
		n++
		at := time.Now().Add(time.Duration(n) * time.Second)
		_ = os.Chtimes(l.store.Path(), at, at)
	})
	l.look()
	if got := l.savedInstance(); got != before {
		t.Fatalf("saved tracker instance = %q during another process's writes, want it unchanged (%q)", got, before)
	}
	l.fake.OnObserve(nil)
	l.look()
	if got := l.savedInstance(); got != instance {
		t.Fatalf("saved tracker instance = %q once the file is quiet, want %q", got, instance)
	}
}
