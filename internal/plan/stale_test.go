package plan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/state"
)

// stalenessWorld is a running demo pipeline and a saved plan that changes
// sink.c only.
type stalenessWorld struct {
	prov *providertest.Provider
	recs []*state.Record
	in   Input
	file *File
}

func newStalenessWorld(t *testing.T) *stalenessWorld {
	t.Helper()
	old := loadPipeline(t, basePipeline)
	w := &stalenessWorld{prov: newFake()}
	for _, c := range old.Components {
		r := record(c, run(w.prov, c.Address(), "pid-"+c.ID, c.SpecHash(testSpecKey), true), state.StatusRunning)
		r.InstanceID = "i-" + c.ID
		w.recs = append(w.recs, r)
	}
	changed := loadPipeline(t, strings.Replace(basePipeline, "inputs  = [processor.b]", "inputs  = [processor.b]\n  env = { LEVEL = \"debug\" }", 1))
	w.in = Input{SpecKey: testSpecKey, Desired: changed, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 5, TokenGeneration: 1}, Records: w.recs, Providers: providers.NewRegistry(w.prov)}
	p, err := Make(context.Background(), w.in)
	if err != nil {
		t.Fatal(err)
	}
	w.file, err = NewFile(p, FileOptions{PipelineFile: "pipeline.hcl", Records: w.recs, TokenGeneration: 1, Now: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.file.ActsOn) != 1 || w.file.ActsOn[0].Address != "sink.c" || w.file.ActsOn[0].InstanceID != "i-c" {
		t.Fatalf("acts on %+v, want sink.c only\n%s", w.file.ActsOn, p)
	}
	return w
}

// restart replaces addr's object and instance, as the watcher does: the
// serial moves, the desired world does not.
func (w *stalenessWorld) restart(t *testing.T, addr string) {
	t.Helper()
	for i, r := range w.recs {
		if r.Address != addr {
			continue
		}
		w.prov.Remove(r.Handle)
		cp := *r
		cp.Handle = run(w.prov, addr, "pid-restarted", r.SpecHash, true)
		cp.InstanceID = "i-restarted"
		w.recs[i] = &cp
		w.in.Records = w.recs
		w.in.Meta.Serial++
		return
	}
	t.Fatalf("no record of %s", addr)
}

func (w *stalenessWorld) check() error { return w.file.CheckFresh(context.Background(), w.in) }

func TestSavedPlanSurvivesARestartOfAComponentItLeavesAlone(t *testing.T) {
	w := newStalenessWorld(t)
	w.restart(t, "source.a")
	if err := w.check(); err != nil {
		t.Fatalf("a restart of source.a, which the plan leaves alone, made it stale: %v", err)
	}
}

func TestSavedPlanIsStaleWhenWhatItActsOnChanged(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, w *stalenessWorld)
		want   string
	}{
		{"restarted", func(t *testing.T, w *stalenessWorld) { w.restart(t, "sink.c") },
			"sink.c, which the plan changes, was restarted since the plan was made (instance i-restarted, the plan saw i-c)"},
		{"status", func(t *testing.T, w *stalenessWorld) {
			cp := *w.recs[2]
			cp.Status = state.StatusFailed
			w.recs[2] = &cp
			w.in.Records = w.recs
		}, "sink.c, which the plan changes, is now failed (the plan saw it running)"},
		{"object stopped", func(t *testing.T, w *stalenessWorld) {
			w.prov.Set(w.recs[2].Handle, func(o *providers.Observed) { o.Running = false })
		}, "sink.c changed since the plan was made: it stopped"},
		{"applied since", func(t *testing.T, w *stalenessWorld) {
			cp := *w.recs[1]
			cp.SpecHash = "0123456789abcdef"
			w.recs[1] = &cp
			w.in.Records = w.recs
		}, "processor.b was applied with another configuration since the plan was made (spec 0123456789ab"},
		{"state rm", func(t *testing.T, w *stalenessWorld) {
			w.in.Records = w.recs[:2]
		}, "sink.c was removed from the state since the plan was made"},
		{"tokens rotated", func(t *testing.T, w *stalenessWorld) { w.in.Meta.TokenGeneration = 2 },
			"the token secret was rotated since the plan was made (generation 2, the plan saw 1)"},
		{"another state", func(t *testing.T, w *stalenessWorld) { w.in.Meta.Lineage = "L2" },
			"the state's lineage is L2, the plan was made for L1 (another state)"},
		{"another backend", func(t *testing.T, w *stalenessWorld) {
			w.file.State, w.in.State, w.in.Meta.Lineage = `pg workspace "prod" (schema flowctl)`, "a state file", "L2"
		}, `the state's lineage is L2, the plan was made for L1 (another state): the plan was made against pg workspace "prod" (schema flowctl), this is a state file`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newStalenessWorld(t)
			tc.change(t, w)
			err := w.check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to say %q", err, tc.want)
			}
		})
	}
}

func TestPlanMadeWithNoStateAppliesOnlyToAStateWhereNothingWasRecorded(t *testing.T) {
	desired := loadPipeline(t, basePipeline)
	prov := newFake()
	in := Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Pipeline: "demo"}, Providers: providers.NewRegistry(prov)}
	p, err := Make(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(p, FileOptions{Now: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if p.Lineage != "" || p.Serial != 0 || len(f.World) != 0 {
		t.Fatalf("a plan from no state records lineage %q serial %d world %v", p.Lineage, p.Serial, f.World)
	}
	in.Meta = state.Meta{Lineage: "NEW", Pipeline: "demo", TokenGeneration: 1} // the state apply just created
	if err := f.CheckFresh(context.Background(), in); err != nil {
		t.Fatalf("against a state created by this apply: %v", err)
	}
	in.Meta.Serial = 3
	err = f.CheckFresh(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "the plan was made with no state, and there is now a state with lineage NEW at serial 3") {
		t.Fatalf("against a state someone applied to: %v", err)
	}
}

func TestVersion1PlanFilesAreStaleWhenTheSerialMoved(t *testing.T) {
	w := newStalenessWorld(t)
	w.file.FormatVersion = 1
	w.restart(t, "source.a")
	err := w.check()
	if err == nil || !strings.Contains(err.Error(), "serial 6, plan made at serial 5") {
		t.Fatalf("err = %v", err)
	}
}

func TestPlanFilePathsAreRelativeToTheWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	f := &File{FormatVersion: FileFormatVersion}
	var err error
	if f.PipelineFile, err = relativePath(dir, dir+"/sub/pipeline.hcl"); err != nil || f.PipelineFile != "sub/pipeline.hcl" {
		t.Fatalf("relative path %q, %v", f.PipelineFile, err)
	}
	other := t.TempDir()
	_, err = f.PipelinePath(other)
	if err == nil || !strings.Contains(err.Error(), "the plan was made for the pipeline file sub/pipeline.hcl, which is not at "+other+"/sub/pipeline.hcl") {
		t.Fatalf("missing pipeline file: %v", err)
	}
	if got := f.Resolve(other, "/abs/pipeline.hcl"); got != "/abs/pipeline.hcl" {
		t.Errorf("a version 1 absolute path resolved to %s", got)
	}
}

func TestVersion1PlanFilesAreStillReadWithTheirAbsolutePaths(t *testing.T) {
	dir := t.TempDir()
	pipeline := filepath.Join(dir, "pipeline.hcl")
	if err := os.WriteFile(pipeline, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := &File{Format: fileMarker, FormatVersion: 1, PipelineFile: pipeline, StatePath: filepath.Join(dir, ".flowctl", "p.state.db"), Plan: &Plan{Pipeline: "p", Lineage: "L1", Serial: 3}}
	b, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatalf("a version 1 file: %v", err)
	}
	if got, err := back.PipelinePath(t.TempDir()); err != nil || got != pipeline {
		t.Errorf("its pipeline file from elsewhere: %q, %v", got, err)
	}
	if got := back.Resolve(t.TempDir(), back.StatePath); got != old.StatePath {
		t.Errorf("its state path: %q", got)
	}
	old.FormatVersion = FileFormatVersion + 1
	if b, err = old.Encode(); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "this flowctl reads versions 1 to 2") {
		t.Errorf("a future version: %v", err)
	}
}
