package apply_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/pkg/contract"
)

// rig is an engine over a real state file and the fake executor: what
// the engine decides and records, without running anything.
type rig struct {
	t     *testing.T
	store *state.Store
	fake  *providertest.Provider
	reg   *providers.Registry
	eng   *apply.Engine
}

func newRig(t *testing.T) *rig {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "demo.state.db"), "demo")
	if err != nil {
		t.Fatal(err)
	}
	fake := providertest.New("process")
	reg := providers.NewRegistry(fake)
	var port atomic.Int64
	port.Store(20000)
	eng := apply.New(apply.Wiring{
		Store: store, Providers: reg,
		AllocPort: func() (int, error) { return int(port.Add(1)), nil },
	})
	return &rig{t: t, store: store, fake: fake, reg: reg, eng: eng}
}

func load(t *testing.T, src string) *config.Pipeline {
	t.Helper()
	p, diags := config.LoadBytes([]byte("pipeline \"demo\" {}\n"+src), "pipeline.hcl", config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

// plan makes the plan of desired against the rig's state and executor.
func (r *rig) plan(desired *config.Pipeline, opts plan.Options) *plan.Plan {
	r.t.Helper()
	in := plan.Input{Desired: desired, Providers: r.reg, Options: opts}
	err := r.store.View(func(tx *state.Tx) error {
		in.Meta = tx.Meta()
		var err error
		in.Records, err = tx.Components()
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	p, err := plan.Make(context.Background(), in)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// apply plans desired and applies the plan.
func (r *rig) apply(desired *config.Pipeline, opts apply.Options) (*apply.Result, error) {
	r.t.Helper()
	return r.eng.Apply(context.Background(), nil, r.plan(desired, plan.Options{}), desired, opts)
}

// mustApply applies desired and fails the test unless every change completed.
func (r *rig) mustApply(desired *config.Pipeline) *apply.Result {
	r.t.Helper()
	res, err := r.apply(desired, apply.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *rig) record(addr string) *state.Record {
	r.t.Helper()
	var rec *state.Record
	err := r.store.View(func(tx *state.Tx) error {
		var err error
		rec, err = tx.Component(addr)
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return rec
}

func (r *rig) history() []*state.Event {
	r.t.Helper()
	var evs []*state.Event
	err := r.store.View(func(tx *state.Tx) error {
		var err error
		evs, err = tx.History(0)
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return evs
}

// historyOf lists addr's history events as "result: detail".
func (r *rig) historyOf(addr string) []string {
	r.t.Helper()
	var out []string
	for _, ev := range r.history() {
		if ev.Address == addr {
			out = append(out, ev.Result+": "+ev.Detail)
		}
	}
	return out
}

func (r *rig) forget(addr string) {
	r.t.Helper()
	if err := r.store.Update(func(tx *state.Tx) error { return tx.DeleteComponent(addr) }); err != nil {
		r.t.Fatal(err)
	}
}

func outcomes(res *apply.Result) map[string]apply.Outcome {
	out := map[string]apply.Outcome{}
	for _, o := range res.Outcomes {
		out[o.Address] = o
	}
	return out
}

const chain = `
source "a" {
  command = ["./a"]
}
processor "b" {
  command = ["./b"]
  inputs  = [source.a]
}
sink "c" {
  command = ["./c"]
  inputs  = [processor.b]
}
`

func TestApplyDeletesDependentsFirstThenCreatesUpstreamFirst(t *testing.T) {
	r := newRig(t)
	r.mustApply(load(t, chain))
	if got, want := r.fake.Ops(providertest.OpStart, providertest.OpStop), []string{"start source.a", "start processor.b", "start sink.c"}; !slices.Equal(got, want) {
		t.Fatalf("first apply: %q, want %q", got, want)
	}
	r.fake.ResetCalls()

	// b and c go; x and y, which read a, come.
	r.mustApply(load(t, `
source "a" {
  command = ["./a"]
}
processor "x" {
  command = ["./x"]
  inputs  = [source.a]
}
sink "y" {
  command = ["./y"]
  inputs  = [processor.x]
}
`))
	want := []string{"stop sink.c", "stop processor.b", "start processor.x", "start sink.y"}
	if got := r.fake.Ops(providertest.OpStart, providertest.OpStop); !slices.Equal(got, want) {
		t.Fatalf("provider calls %q, want %q", got, want)
	}
	if r.record("processor.b") != nil || r.record("sink.c") != nil {
		t.Fatal("a deleted component is still in state")
	}
}

func TestApplySkipsDependentsOfAFailedComponentAndFinishesIndependentBranches(t *testing.T) {
	const pipeline = chain + `
source "d" {
  command = ["./d"]
}
sink "e" {
  command = ["./e"]
  inputs  = [source.d]
}
`
	tests := []struct {
		name       string
		fail       func(f *providertest.Provider)
		err        string
		statusOfB  string // "": not in state
		historyOfB string
	}{
		{
			name:       "it fails to start",
			fail:       func(f *providertest.Provider) { f.FailStart("processor.b", errors.New("no such image")) },
			err:        "start: no such image",
			historyOfB: "failed: start: no such image",
		},
		{
			name:       "it never becomes ready",
			fail:       func(f *providertest.Provider) { f.NeverReady("processor.b") },
			err:        "not ready: its own health check reports it unhealthy",
			statusOfB:  state.StatusFailed,
			historyOfB: "failed: not ready: its own health check reports it unhealthy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			tt.fail(r.fake)
			res, err := r.apply(load(t, pipeline), apply.Options{})
			if !errors.Is(err, apply.ErrFailed) {
				t.Fatalf("err = %v, want ErrFailed", err)
			}
			got := outcomes(res)
			if o := got["processor.b"]; o.Err == nil || !strings.Contains(o.Err.Error(), tt.err) {
				t.Errorf("processor.b: %+v, want error %q", o, tt.err)
			}
			if o := got["sink.c"]; o.Skipped != "not started: its upstream processor.b failed" {
				t.Errorf("sink.c: %+v", o)
			}
			for _, addr := range []string{"source.a", "source.d", "sink.e"} {
				if o := got[addr]; o.Err != nil || o.Skipped != "" || r.record(addr).Status != state.StatusRunning {
					t.Errorf("%s did not finish: %+v", addr, o)
				}
			}
			if slices.Contains(r.fake.Ops(providertest.OpStart), "start sink.c") || r.record("sink.c") != nil {
				t.Error("the dependent of a failed component was started")
			}
			if rec := r.record("processor.b"); (rec == nil) != (tt.statusOfB == "") || (rec != nil && rec.Status != tt.statusOfB) {
				t.Errorf("processor.b in state: %+v, want status %q", rec, tt.statusOfB)
			}
			if hist := r.historyOf("processor.b"); !slices.Equal(hist, []string{tt.historyOfB}) {
				t.Errorf("history of processor.b: %q", hist)
			}
			if res.Added != 3 || len(res.Failed()) != 2 {
				t.Errorf("added %d, failed %d", res.Added, len(res.Failed()))
			}
		})
	}
}

const five = `
source "a" {
  command = ["./a"]
}
source "b" {
  command = ["./b"]
  env     = { X = "1" }
}
source "c" {
  command = ["./c"]
}
source "d" {
  command = ["./d"]
}
source "e" {
  command = ["./e"]
}
`

func TestApplyCountsEachActionAndSumsThemUp(t *testing.T) {
	r := newRig(t)
	if res := r.mustApply(load(t, five)); res.Added != 5 || res.Summary(false) != "Apply complete! Components: 5 added, 0 changed, 0 destroyed." {
		t.Fatalf("first apply: %+v %q", res, res.Summary(false))
	}
	c, _ := r.fake.Current("source.c")
	r.fake.Exit(c, 1)    // restart
	r.forget("source.e") // adopt
	next := load(t, strings.NewReplacer(
		"command = [\"./a\"]", "command = [\"./a\"]\n  stop_timeout = \"30s\"", // update
		`X = "1"`, `X = "2"`, // replace
		"source \"d\" {\n  command = [\"./d\"]\n}", "source \"f\" {\n  command = [\"./f\"]\n}", // delete d, create f
	).Replace(five))
	p := r.plan(next, plan.Options{})
	counts := p.Counts()
	for _, a := range []plan.Action{plan.Create, plan.Update, plan.Replace, plan.Restart, plan.Delete, plan.Adopt} {
		if counts[a] != 1 {
			t.Fatalf("the plan does not do one of each:\n%s", p)
		}
	}
	res, err := r.eng.Apply(context.Background(), nil, p, next, apply.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := [6]int{res.Added, res.Changed, res.Destroyed, res.Replaced, res.Restarted, res.Adopted}; got != [6]int{1, 1, 1, 1, 1, 1} {
		t.Errorf("added, changed, destroyed, replaced, restarted, adopted = %v", got)
	}
	if got, want := res.Summary(false), "Apply complete! Components: 2 added, 3 changed, 2 destroyed."; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}

	res, err = r.eng.Apply(context.Background(), nil, r.plan(next, plan.Options{Destroy: true}), next, apply.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Summary(true), "Destroy complete! Components: 5 destroyed."; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

func TestAdoptRecordsTheRunningObjectWithoutStartingIt(t *testing.T) {
	r := newRig(t)
	r.mustApply(load(t, chain))
	h, _ := r.fake.Current("processor.b")
	obj, _ := r.fake.Object(h)
	r.forget("processor.b")
	r.fake.ResetCalls()

	res := r.mustApply(load(t, chain))
	if res.Adopted != 1 {
		t.Fatalf("adopted %d", res.Adopted)
	}
	if ops := r.fake.Ops(providertest.OpStart, providertest.OpStop); len(ops) != 0 {
		t.Fatalf("adoption started or stopped something: %q", ops)
	}
	rec := r.record("processor.b")
	if !bytes.Equal(rec.Handle, h) || rec.InstanceID != obj.InstanceID || rec.Status != state.StatusRunning || rec.Ports[contract.EnvPort] != obj.Ports[contract.EnvPort] {
		t.Fatalf("state %+v, want the object %+v", rec, obj)
	}
}

func TestStateNamesTheObjectBeforeItIsReady(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	first := map[string]string{} // address -> what state said at its first observation
	r.fake.OnObserve(func(o providers.Observed) {
		rec := r.record(o.Address)
		mu.Lock()
		defer mu.Unlock()
		if _, ok := first[o.Address]; ok {
			return
		}
		switch {
		case rec == nil:
			first[o.Address] = "not in state"
		case !bytes.Equal(rec.Handle, o.Handle):
			first[o.Address] = "another handle"
		default:
			first[o.Address] = rec.Status
		}
	})
	r.mustApply(load(t, chain))
	for _, addr := range []string{"source.a", "processor.b", "sink.c"} {
		if first[addr] != state.StatusCreating {
			t.Errorf("%s: when first observed, state said %q", addr, first[addr])
		}
		if got := r.record(addr).Status; got != state.StatusRunning {
			t.Errorf("%s: %s once ready", addr, got)
		}
	}
}

func TestRestartStartsANewInstanceAndRecordsOneEvent(t *testing.T) {
	for _, atStart := range []bool{false, true} {
		t.Run(map[bool]string{false: "event once ready", true: "event at start"}[atStart], func(t *testing.T) {
			r := newRig(t)
			desired := load(t, chain)
			r.mustApply(desired)
			old := r.record("processor.b")
			r.fake.ResetCalls()

			id, err := r.eng.Restart(context.Background(), old, desired.Component("processor.b"), "exited code=1", apply.Options{Operation: "restart", EventAtStart: atStart})
			if err != nil {
				t.Fatal(err)
			}
			rec := r.record("processor.b")
			if id == "" || id == old.InstanceID || rec.InstanceID != id || bytes.Equal(rec.Handle, old.Handle) || rec.RestartCount != 1 {
				t.Fatalf("returned %q; state %+v; before %+v", id, rec, old)
			}
			if got, want := r.fake.Ops(providertest.OpStart, providertest.OpStop), []string{"stop processor.b", "start processor.b"}; !slices.Equal(got, want) {
				t.Fatalf("calls %q, want %q", got, want)
			}
			var restarts []string
			for _, ev := range r.history() {
				if ev.Operation == "restart" {
					restarts = append(restarts, ev.Address+" "+ev.Action+" "+ev.Reason+" "+ev.Result)
				}
			}
			if want := []string{"processor.b restart exited code=1 ok"}; !slices.Equal(restarts, want) {
				t.Fatalf("history %q, want %q", restarts, want)
			}
		})
	}
}

func TestRestartReturnsTheNewInstanceEvenWhenItNeverBecomesReady(t *testing.T) {
	r := newRig(t)
	desired := load(t, chain)
	r.mustApply(desired)
	r.fake.NeverReady("sink.c")
	id, err := r.eng.Restart(context.Background(), r.record("sink.c"), desired.Component("sink.c"), "exited code=1", apply.Options{Operation: "restart"})
	if err == nil || !strings.Contains(err.Error(), "unhealthy") {
		t.Fatalf("err = %v", err)
	}
	if rec := r.record("sink.c"); id == "" || rec.InstanceID != id || rec.Status != state.StatusFailed {
		t.Fatalf("returned %q; state %+v", id, rec)
	}
}

func TestOptionsOfOneRunDoNotLeakIntoTheNext(t *testing.T) {
	r := newRig(t)
	var out bytes.Buffer
	_, err := r.apply(load(t, `
source "a" {
  command = ["./a"]
}
`), apply.Options{Out: &out, OpID: "op-1", Operation: "custom", Annotate: func(ev *state.Event) { ev.Detail = "annotated" }})
	if err != nil {
		t.Fatal(err)
	}
	printed := out.Len()
	if printed == 0 {
		t.Fatal("the first run printed nothing")
	}
	if _, err := r.apply(load(t, chain), apply.Options{}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != printed {
		t.Errorf("the second run printed to the first's writer:\n%s", out.String()[printed:])
	}
	for _, ev := range r.history() {
		first := ev.Address == "source.a"
		if first != (ev.OpID == "op-1") || first != (ev.Operation == "custom") || first != (ev.Detail == "annotated") {
			t.Errorf("event %+v", ev)
		}
		if !first && (ev.OpID == "" || ev.Operation != "apply") {
			t.Errorf("second run's event %+v, want a fresh op id and operation apply", ev)
		}
	}
}

func TestAllocatedPortsAreNoneAnotherComponentHoldsOrThisApplyGave(t *testing.T) {
	r := newRig(t)
	r.mustApply(load(t, `source "a" {
  command = ["./a"]
}
`))
	held := map[int]string{}
	for _, p := range r.record("source.a").Ports {
		held[p] = "source.a"
	}
	if len(held) != 2 {
		t.Fatalf("source.a holds ports %v", r.record("source.a").Ports)
	}
	// An allocator that offers source.a's ports first, then each of the
	// next ports twice.
	var mu sync.Mutex
	offers := []int{20001, 20002, 20003, 20003, 20004, 20004, 20005, 20005, 20006, 20006}
	r.eng = apply.New(apply.Wiring{Store: r.store, Providers: r.reg, AllocPort: func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(offers) == 0 {
			return 0, errors.New("no more ports")
		}
		p := offers[0]
		offers = offers[1:]
		return p, nil
	}})
	r.mustApply(load(t, chain))
	for _, addr := range []string{"processor.b", "sink.c"} {
		for name, p := range r.record(addr).Ports {
			if other, ok := held[p]; ok {
				t.Errorf("%s got %s %d, which %s holds", addr, name, p, other)
			}
			held[p] = addr
		}
	}
	if got := r.record("source.a").Ports; len(got) != 2 || held[got[contract.EnvPort]] != "source.a" || held[got[contract.EnvHealthPort]] != "source.a" {
		t.Errorf("source.a's ports moved: %v", got)
	}
}
