package plan

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil/golden"
)

// newFake is the executor the plan tests observe: Make only asks it
// (Observe, List); the e2e tests run the real executors.
func newFake() *providertest.Provider { return providertest.New("process") }

// run puts an object of the demo pipeline into p, as an earlier apply left
// it, and returns its handle.
func run(p *providertest.Provider, addr, fp, hash string, running bool) providers.Handle {
	return p.Put(providers.Observed{Address: addr, Exists: true, Running: running, SpecHash: hash, Pipeline: "demo", Lineage: "L1", Fingerprint: fp})
}

func loadPipeline(t *testing.T, src string) *config.Pipeline {
	t.Helper()
	p, diags := config.LoadBytes([]byte(src), "pipeline.hcl", config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

const basePipeline = `
pipeline "demo" {}
variable "secret" {
  default   = "hunter2"
  sensitive = true
}
source "a" {
  command = ["./a"]
  env     = { MODE = "fast" }
}
processor "b" {
  command = ["./b"]
  inputs  = [source.a]
  env     = { UP = "${source.a.address}", TOKEN = var.secret }
}
sink "c" {
  command = ["./c"]
  inputs  = [processor.b]
}
`

func record(c *config.Component, h providers.Handle, status string) *state.Record {
	return &state.Record{Address: c.Address(), Kind: string(c.Kind), ID: c.ID, Provider: c.Executor, SpecHash: c.SpecHash(testSpecKey), Spec: c.Redacted().CanonicalJSON(), Handle: h, Status: status}
}

func TestPlanActionsAndReasons(t *testing.T) {
	old := loadPipeline(t, basePipeline)
	changed := loadPipeline(t, strings.Replace(strings.Replace(basePipeline, `"fast"`, `"slow"`, 1), `inputs  = [processor.b]`, "inputs  = [processor.b]\n  stop_timeout = \"30s\"", 1))

	tests := []struct {
		name    string
		desired *config.Pipeline
		setup   func(p *providertest.Provider) []*state.Record
		opts    Options
		want    string
	}{
		{
			name:    "nothing recorded: create all in order",
			desired: old,
			setup:   func(*providertest.Provider) []*state.Record { return nil },
			want:    "[1] + source.a (create: not_in_state)\n[2] + processor.b (create: not_in_state)\n[3] + sink.c (create: not_in_state)\n",
		},
		{
			name:    "all running and recorded: no-op",
			desired: old,
			setup: func(p *providertest.Provider) []*state.Record {
				var recs []*state.Record
				for i, c := range old.Components {
					recs = append(recs, record(c, run(p, c.Address(), "fp"+string(rune('0'+i)), c.SpecHash(testSpecKey), true), state.StatusRunning))
				}
				return recs
			},
			want: "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "env change replaces, stop_timeout updates in place",
			desired: changed,
			setup: func(p *providertest.Provider) []*state.Record {
				var recs []*state.Record
				for i, c := range old.Components {
					recs = append(recs, record(c, run(p, c.Address(), "fp"+string(rune('0'+i)), c.SpecHash(testSpecKey), true), state.StatusRunning))
				}
				return recs
			},
			want: "[1] -/+ source.a (replace: spec_changed; forced by env.MODE)\n[2]   processor.b (no-op: up_to_date)\n[3] ~ sink.c (update: spec_changed)\n",
		},
		{
			name:    "drift: gone, exited, relabelled, tainted",
			desired: old,
			setup: func(p *providertest.Provider) []*state.Record {
				a, b, c := old.Components[0], old.Components[1], old.Components[2]
				h, _ := json.Marshal("gone")
				return []*state.Record{
					record(a, h, state.StatusRunning),
					record(b, run(p, b.Address(), "fpb", "other-hash", true), state.StatusRunning),
					record(c, run(p, c.Address(), "fpc", c.SpecHash(testSpecKey), false), state.StatusRunning),
				}
			},
			want: "[1] + source.a (create: deleted_outside)\n[2] -/+ processor.b (replace: changed_outside)\n[3] ^ sink.c (restart: exited)\n",
		},
		{
			name:    "unrecorded twin is adopted, unrecorded stranger is an orphan, removed component is deleted",
			desired: loadPipeline(t, strings.Replace(basePipeline, "sink \"c\" {\n  command = [\"./c\"]\n  inputs  = [processor.b]\n}", "", 1)),
			setup: func(p *providertest.Provider) []*state.Record {
				a, c := old.Components[0], old.Components[2]
				run(p, a.Address(), "twin", a.SpecHash(testSpecKey), true)
				run(p, "processor.b", "stranger", "some-old-hash", true)
				return []*state.Record{record(c, run(p, c.Address(), "fpc", c.SpecHash(testSpecKey), true), state.StatusRunning)}
			},
			want: "[1] - processor.b (delete-orphan: orphan)\n[2] - sink.c (delete: not_in_config)\n[3] <= source.a (adopt: adopt_unrecorded)\n[4] + processor.b (create: not_in_state)\n",
		},
		{
			name:    "an unrecorded twin is adopted when the recorded object is gone (a replace killed after the new start)",
			desired: old,
			setup: func(p *providertest.Provider) []*state.Record {
				a, b, c := old.Components[0], old.Components[1], old.Components[2]
				gone, _ := json.Marshal("gone")
				run(p, a.Address(), "new", a.SpecHash(testSpecKey), true)
				return []*state.Record{
					record(a, gone, state.StatusRunning),
					record(b, run(p, b.Address(), "fpb", b.SpecHash(testSpecKey), true), state.StatusRunning),
					record(c, run(p, c.Address(), "fpc", c.SpecHash(testSpecKey), true), state.StatusRunning),
				}
			},
			want: "[1] <= source.a (adopt: adopt_unrecorded)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "a failed start is replaced, an unconfirmed one adopted",
			desired: old,
			setup: func(p *providertest.Provider) []*state.Record {
				a, b, c := old.Components[0], old.Components[1], old.Components[2]
				return []*state.Record{
					record(a, run(p, a.Address(), "fpa", a.SpecHash(testSpecKey), true), state.StatusFailed),
					record(b, run(p, b.Address(), "fpb", b.SpecHash(testSpecKey), true), state.StatusCreating),
					record(c, run(p, c.Address(), "fpc", c.SpecHash(testSpecKey), true), state.StatusRunning),
				}
			},
			want: "[1] -/+ source.a (replace: tainted)\n[2] <= processor.b (adopt: start_unconfirmed)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name:    "destroy deletes dependents first",
			desired: old,
			opts:    Options{Destroy: true},
			setup: func(p *providertest.Provider) []*state.Record {
				var recs []*state.Record
				for i, c := range old.Components {
					recs = append(recs, record(c, run(p, c.Address(), "fp"+string(rune('0'+i)), c.SpecHash(testSpecKey), true), state.StatusRunning))
				}
				return recs
			},
			want: "[1] - sink.c (delete: destroy_requested)\n[2] - processor.b (delete: destroy_requested)\n[3] - source.a (delete: destroy_requested)\n",
		},
		{
			name:    "target keeps what the target depends on",
			desired: old,
			opts:    Options{Targets: []string{"processor.b"}},
			setup:   func(*providertest.Provider) []*state.Record { return nil },
			want:    "[1] + source.a (create: not_in_state)\n[2] + processor.b (create: not_in_state)\n",
		},
		{
			name:    "replace on request",
			desired: old,
			opts:    Options{Replace: []string{"sink.c"}},
			setup: func(p *providertest.Provider) []*state.Record {
				var recs []*state.Record
				for i, c := range old.Components {
					recs = append(recs, record(c, run(p, c.Address(), "fp"+string(rune('0'+i)), c.SpecHash(testSpecKey), true), state.StatusRunning))
				}
				return recs
			},
			want: "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3] -/+ sink.c (replace: replace_by_request)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prov := newFake()
			recs := tt.setup(prov)
			p, err := Make(context.Background(), Input{SpecKey: testSpecKey,
				Desired: tt.desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 3},
				Records: recs, Providers: providers.NewRegistry(prov), Options: tt.opts,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Fatalf("plan:\n%s\nwant:\n%s", got, tt.want)
			}
			for _, c := range prov.Calls() {
				if c.Op != providertest.OpObserve && c.Op != providertest.OpList {
					t.Errorf("a plan only looks, yet it called %s", c)
				}
			}
		})
	}
}

func TestObjectsOfAnotherLineageAreForeignNeverDeleted(t *testing.T) {
	prov := newFake()
	theirs := run(prov, "source.a", "theirs", "h", true)
	prov.Set(theirs, func(o *providers.Observed) { o.Lineage = "OTHER" })
	p, err := Make(context.Background(), Input{SpecKey: testSpecKey,
		Desired: loadPipeline(t, basePipeline), Meta: state.Meta{Lineage: "L1", Pipeline: "demo"},
		Providers: providers.NewRegistry(prov),
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.String(), "delete") || len(p.Foreign) != 1 {
		t.Fatalf("plan:\n%sforeign: %v", p, p.Foreign)
	}
}

func TestRenderedPlanMatchesGolden(t *testing.T) {
	old := loadPipeline(t, basePipeline)
	changed := loadPipeline(t, strings.Replace(strings.Replace(basePipeline, `"fast"`, `"slow"`, 1), `default   = "hunter2"`, `default   = "hunter3"`, 1))
	prov := newFake()
	a, b, c := old.Components[0], old.Components[1], old.Components[2]
	recs := []*state.Record{
		record(a, run(prov, a.Address(), "fpa", a.SpecHash(testSpecKey), true), state.StatusRunning),
		record(b, run(prov, b.Address(), "fpb", b.SpecHash(testSpecKey), true), state.StatusRunning),
		record(c, run(prov, c.Address(), "fpc", c.SpecHash(testSpecKey), false), state.StatusRunning),
	}
	p, err := Make(context.Background(), Input{SpecKey: testSpecKey,
		Desired: changed, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"},
		Records: recs, Providers: providers.NewRegistry(prov),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	Render(&out, p, RenderOptions{})
	if strings.Contains(out.String(), "hunter") {
		t.Fatalf("a sensitive value was rendered:\n%s", out.String())
	}
	golden.Check(t, filepath.Join("testdata", "render.golden"), []byte(out.String()))
}

func TestPlanFileRoundTripsAndDetectsTampering(t *testing.T) {
	prov := newFake()
	desired := loadPipeline(t, basePipeline)
	p, err := Make(context.Background(), Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 7}, Providers: providers.NewRegistry(prov)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(p, FileOptions{PipelineFile: "pipeline.hcl", StatePath: "state.db", Now: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") || !f.HasSensitive {
		t.Fatal("a plan file must never hold a sensitive value, and must say it had one")
	}
	if !IsPlanFile(b) {
		t.Fatal("not recognised as a plan file")
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Plan.String() != p.String() || back.Plan.Serial != 7 {
		t.Fatalf("round trip changed the plan:\n%s", back.Plan)
	}
	tampered := strings.Replace(string(b), `"serial": 7`, `"serial": 8`, 1)
	if _, err := Decode([]byte(tampered)); err != ErrCorrupt {
		t.Fatalf("tampered file: err = %v, want ErrCorrupt", err)
	}
	// Freshness: a moved serial alone (a restart by the watcher) is not
	// stale; a component recorded since is.
	if err := f.CheckFresh(context.Background(), Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 8}, Providers: providers.NewRegistry(prov)}); err != nil {
		t.Fatalf("a moved serial with the same desired world: %v", err)
	}
	err = f.CheckFresh(context.Background(), Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 8}, Records: []*state.Record{{Address: "sink.z", Provider: "process", SpecHash: "h"}}, Providers: providers.NewRegistry(prov)})
	if err == nil || !strings.Contains(err.Error(), "sink.z was added to the state since the plan was made") {
		t.Fatalf("err = %v", err)
	}
	// A new object appearing since the plan is a change of reality.
	run(prov, "source.a", "appeared", "x", true)
	err = f.CheckFresh(context.Background(), Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 7}, Providers: providers.NewRegistry(prov)})
	if err == nil || !strings.Contains(err.Error(), "source.a changed since the plan was made") {
		t.Fatalf("err = %v", err)
	}
}

func TestObserveAsksEachRecordsProviderAndListsEachExecutorInUse(t *testing.T) {
	desired := loadPipeline(t, basePipeline)
	a, b := desired.Components[0], desired.Components[1]
	prov := newFake()
	prov.SetRestartsItself(true)
	recs := []*state.Record{
		record(a, run(prov, a.Address(), "fpa", a.SpecHash(testSpecKey), true), state.StatusRunning),
		record(b, run(prov, b.Address(), "fpb", b.SpecHash(testSpecKey), false), state.StatusRunning),
	}
	run(prov, "sink.x", "fpx", "h", true)
	in := Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: recs, Providers: providers.NewRegistry(prov)}

	r, err := Observe(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Observed) != 2 || !r.Observed["source.a"].Running || r.Observed["processor.b"].Running || r.Observed["processor.b"].Address != "processor.b" {
		t.Errorf("observed %+v", r.Observed)
	}
	var listed []string
	for _, l := range r.Listed {
		listed = append(listed, l.Provider+" "+l.Object.Fingerprint)
	}
	if got := strings.Join(listed, ", "); got != "process fpb, process fpx, process fpa" {
		t.Errorf("listed %s", got)
	}
	if !r.SelfRestarting["process"] {
		t.Error("a provider that restarts its own is not named so")
	}
	if got := strings.Join(prov.Ops(providertest.OpList), ", "); got != "list demo" {
		t.Errorf("lists: %s", got)
	}

	prov.ResetCalls()
	in.Options.NoRefresh = true
	r, err = Observe(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(prov.Calls()) != 0 || len(r.Observed) != 0 || !r.SelfRestarting["process"] {
		t.Errorf("without refresh: calls %v, reality %+v", prov.Calls(), r)
	}

	in.Options.NoRefresh = false
	in.Providers = providers.NewRegistry(providertest.New("docker"))
	if _, err := Observe(context.Background(), in); err == nil || !strings.Contains(err.Error(), "observe source.a: no executor") {
		t.Errorf("a record whose executor is missing: err = %v", err)
	}
}

func TestObserveTakesWhatListShowsUnderARecordsHandle(t *testing.T) {
	desired := loadPipeline(t, basePipeline)
	a, b, c := desired.Components[0], desired.Components[1], desired.Components[2]
	prov := newFake()
	hb := run(prov, b.Address(), "fpb", b.SpecHash(testSpecKey), false)
	prov.Set(hb, func(o *providers.Observed) { o.ExitPending = true })
	recs := []*state.Record{
		record(a, run(prov, a.Address(), "fpa", a.SpecHash(testSpecKey), true), state.StatusRunning),
		record(b, hb, state.StatusRunning),
		record(c, providertest.HandleOf("gone"), state.StatusRunning),
	}
	in := Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: recs, Providers: providers.NewRegistry(prov)}
	r, err := Observe(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if o := r.Observed[a.Address()]; o == nil || !o.Running || o.Address != a.Address() || o.Fingerprint != "fpa" {
		t.Errorf("listed and recorded: observed %+v", o)
	}
	if o := r.Observed[c.Address()]; o == nil || o.Exists {
		t.Errorf("recorded, gone: observed %+v", o)
	}
	// Listed under its handle: not asked again. Being written down
	// (ExitPending) or not listed: asked.
	asked := map[string]bool{}
	for _, call := range prov.Calls() {
		if call.Op == providertest.OpObserve {
			asked[call.Handle] = true
		}
	}
	if asked[string(recs[0].Handle)] || !asked[string(recs[1].Handle)] || !asked[string(recs[2].Handle)] || len(asked) != 2 {
		t.Errorf("observe calls: %v", prov.Calls())
	}
}
