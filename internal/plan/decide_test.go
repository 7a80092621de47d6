package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/state"
)

// world is what Decide reads besides the desired pipeline: state's records
// and what the providers reported.
type world struct {
	records []*state.Record
	reality Reality
}

// fingerprint is the fingerprint the decision tests give c's object.
func fingerprint(c *config.Component) string { return c.Address() + "#1" }

// recorded adds c to state, as applied, with status, naming its object.
func (w *world) recorded(c *config.Component, status string) *state.Record {
	r := record(c, providertest.HandleOf(fingerprint(c)), status)
	w.records = append(w.records, r)
	return r
}

// observed adds what c's provider reports of c's recorded object, as
// apply left it (running, with c's spec hash); change edits it.
func (w *world) observed(c *config.Component, change func(o *providers.Observed)) {
	o := objectOf(c)
	if change != nil {
		change(&o)
	}
	if w.reality.Observed == nil {
		w.reality.Observed = map[string]*providers.Observed{}
	}
	w.reality.Observed[c.Address()] = &o
	if o.Exists {
		w.reality.Listed = append(w.reality.Listed, Listed{Provider: c.Executor, Object: o})
	}
}

// unrecorded adds an object of the pipeline that state does not record.
func (w *world) unrecorded(o providers.Observed) {
	w.reality.Listed = append(w.reality.Listed, Listed{Provider: "process", Object: o})
}

// both records c as running and observes its object as apply left it.
func (w *world) both(cs ...*config.Component) {
	for _, c := range cs {
		w.recorded(c, state.StatusRunning)
		w.observed(c, nil)
	}
}

func objectOf(c *config.Component) providers.Observed {
	fp := fingerprint(c)
	return providers.Observed{Address: c.Address(), Exists: true, Running: true, SpecHash: c.SpecHash(testSpecKey), Pipeline: "demo", Lineage: "L1", Fingerprint: fp, Handle: providertest.HandleOf(fp)}
}

// summary is the plan's compact text form followed by its drift, one line
// each.
func summary(p *Plan) string {
	var b strings.Builder
	b.WriteString(p.String())
	for _, d := range p.Drift {
		fmt.Fprintf(&b, "drift %s: %s (%s)\n", d.Address, d.Reason, d.Detail)
	}
	return b.String()
}

// withHealth gives source.a of basePipeline a health block checking path.
func withHealth(t *testing.T, path string) *config.Pipeline {
	t.Helper()
	return loadPipeline(t, strings.Replace(basePipeline, `env     = { MODE = "fast" }`, fmt.Sprintf("env     = { MODE = \"fast\" }\n  health {\n    http = %q\n  }", path), 1))
}

func TestDecideTurnsDesiredStateAndRealityIntoChangesWithReasons(t *testing.T) {
	base := loadPipeline(t, basePipeline)
	a, b, c := base.Components[0], base.Components[1], base.Components[2]
	changed := loadPipeline(t, strings.Replace(strings.Replace(basePipeline, `"fast"`, `"slow"`, 1), "inputs  = [processor.b]", "inputs  = [processor.b]\n  stop_timeout = \"30s\"", 1))
	onlyA := loadPipeline(t, strings.Replace(basePipeline, basePipeline[strings.Index(basePipeline, "processor \"b\""):], "", 1))
	checked, checkedElsewhere := withHealth(t, "/health"), withHealth(t, "/ready")

	tests := []struct {
		name    string
		desired *config.Pipeline
		world   func(w *world)
		opts    Options
		want    string
	}{
		{
			name:    "components state does not record are created, upstream first",
			desired: base,
			world:   func(*world) {},
			want:    "[1] + source.a (create: not_in_state)\n[2] + processor.b (create: not_in_state)\n[3] + sink.c (create: not_in_state)\n",
		},
		{
			name:    "components running as recorded are left alone",
			desired: base,
			world:   func(w *world) { w.both(a, b, c) },
			want:    "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "a changed env replaces, naming the attribute; a changed stop_timeout updates in place",
			desired: changed,
			world:   func(w *world) { w.both(a, b, c) },
			want:    "[1] -/+ source.a (replace: spec_changed; forced by env.MODE)\n[2]   processor.b (no-op: up_to_date)\n[3] ~ sink.c (update: spec_changed)\n",
		},
		{
			name:    "a recorded object that exists but does not run is restarted, and is drift",
			desired: base,
			world: func(w *world) {
				w.both(a, b)
				w.recorded(c, state.StatusRunning)
				w.observed(c, func(o *providers.Observed) { o.Running, o.Detail = false, "exited with code 2" })
			},
			want: "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3] ^ sink.c (restart: exited)\n" +
				"drift sink.c: exited (recorded as running, but it is not (exited with code 2))\n",
		},
		{
			name:    "components no longer desired are deleted, dependents first",
			desired: onlyA,
			world:   func(w *world) { w.both(a, b, c) },
			want:    "[1] - sink.c (delete: not_in_config)\n[2] - processor.b (delete: not_in_config)\n[3]   source.a (no-op: up_to_date)\n",
		},
		{
			name:    "destroy deletes every recorded component, dependents first",
			desired: base,
			opts:    Options{Destroy: true},
			world:   func(w *world) { w.both(a, b, c) },
			want:    "[1] - sink.c (delete: destroy_requested)\n[2] - processor.b (delete: destroy_requested)\n[3] - source.a (delete: destroy_requested)\n",
		},
		{
			name:    "an object of the pipeline that state does not record and nothing matches is an orphan",
			desired: onlyA,
			world: func(w *world) {
				w.both(a)
				w.unrecorded(providers.Observed{Address: "processor.old", Exists: true, Running: true, SpecHash: "old", Pipeline: "demo", Lineage: "L1", Fingerprint: "old#9"})
			},
			want: "[1] - processor.old (delete-orphan: orphan)\n[2]   source.a (no-op: up_to_date)\n" +
				"drift processor.old: orphan (a process object of this pipeline that state does not record (old#9))\n",
		},
		{
			name:    "an unrecorded object running the desired spec is adopted rather than started twice",
			desired: base,
			world: func(w *world) {
				w.both(b, c)
				w.unrecorded(objectOf(a))
			},
			want: "[1] <= source.a (adopt: adopt_unrecorded)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "an unrecorded object running another spec is not adopted: an orphan, and a create",
			desired: base,
			world: func(w *world) {
				w.both(b, c)
				o := objectOf(a)
				o.SpecHash = "elsewhere"
				w.unrecorded(o)
			},
			want: "[1] - source.a (delete-orphan: orphan)\n[2] + source.a (create: not_in_state)\n[3]   processor.b (no-op: up_to_date)\n[4]   sink.c (no-op: up_to_date)\n" +
				"drift source.a: orphan (a process object of this pipeline that state does not record (source.a#1))\n",
		},
		{
			name:    "a start an apply never saw ready is adopted; a start that never became ready is replaced",
			desired: base,
			world: func(w *world) {
				w.recorded(a, state.StatusFailed)
				w.observed(a, nil)
				w.recorded(b, state.StatusCreating)
				w.observed(b, nil)
				w.both(c)
			},
			want: "[1] -/+ source.a (replace: tainted)\n[2] <= processor.b (adopt: start_unconfirmed)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "drift: an object deleted outside is created again, one relabelled outside replaced",
			desired: base,
			world: func(w *world) {
				w.recorded(a, state.StatusRunning)
				w.observed(a, func(o *providers.Observed) { *o = providers.Observed{} })
				w.recorded(b, state.StatusRunning)
				w.observed(b, func(o *providers.Observed) { o.SpecHash = "0123456789abcdef" })
				w.both(c)
			},
			want: "[1] + source.a (create: deleted_outside)\n[2] -/+ processor.b (replace: changed_outside)\n[3]   sink.c (no-op: up_to_date)\n" +
				"drift processor.b: changed_outside (the object's spec hash is 0123456789ab, not the one flowctl recorded)\n" +
				"drift source.a: deleted_outside (recorded in state, but the object no longer exists)\n",
		},
		{
			name:    "a component recorded on another executor is replaced",
			desired: base,
			world: func(w *world) {
				w.both(b, c)
				w.recorded(a, state.StatusRunning).Provider = "docker"
			},
			want: "[1] -/+ source.a (replace: executor_changed)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "a health change updates in place where flowctl probes the component",
			desired: checkedElsewhere,
			world:   func(w *world) { w.both(checked.Components...) },
			want:    "[1] ~ source.a (update: spec_changed)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "a health change replaces where the executor restarts and checks its components itself",
			desired: checkedElsewhere,
			world: func(w *world) {
				w.both(checked.Components...)
				w.reality.SelfRestarting = map[string]bool{"process": true}
			},
			want: "[1] -/+ source.a (replace: spec_changed; forced by health.path)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "without refresh state is the truth: what the providers said is not read",
			desired: base,
			opts:    Options{NoRefresh: true},
			world: func(w *world) {
				w.recorded(a, state.StatusRunning)
				w.observed(a, func(o *providers.Observed) { *o = providers.Observed{} })
				w.both(b, c)
				w.unrecorded(providers.Observed{Address: "processor.old", Exists: true, Pipeline: "demo", Lineage: "L1", Fingerprint: "old#9"})
			},
			want: "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "objects of another lineage are never touched",
			desired: base,
			world: func(w *world) {
				w.both(b, c)
				o := objectOf(a)
				o.Lineage = "OTHER"
				w.unrecorded(o)
			},
			want: "[1] + source.a (create: not_in_state)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w world
			tt.world(&w)
			p, err := Decide(Input{SpecKey: testSpecKey, Desired: tt.desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 3}, Records: w.records, Options: tt.opts}, w.reality)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(p); got != tt.want {
				t.Fatalf("plan:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestDecideShowsWhatItSawAndSetsForeignObjectsApart(t *testing.T) {
	base := loadPipeline(t, basePipeline)
	a, b := base.Components[0], base.Components[1]
	var w world
	w.both(a)
	theirs := objectOf(b)
	theirs.Lineage = "OTHER"
	w.unrecorded(theirs)
	p, err := Decide(Input{SpecKey: testSpecKey, Desired: base, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records}, w.reality)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Reality) != 1 || p.Reality[0] != (Seen{Address: "source.a", Provider: "process", Exists: true, Running: true, Fingerprint: "source.a#1", InState: true, Lineage: "L1"}) {
		t.Errorf("reality %+v", p.Reality)
	}
	if len(p.Foreign) != 1 || p.Foreign[0].Address != "processor.b" || p.Foreign[0].Lineage != "OTHER" {
		t.Errorf("foreign %+v", p.Foreign)
	}
}
