package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/process"
)

// TestSavedPlanRefusedWhenStale saves a plan, changes one thing behind its
// back, and checks that apply refuses the plan, says which thing changed,
// and touches nothing.
func TestSavedPlanRefusedWhenStale(t *testing.T) {
	cases := []struct {
		name string
		// apply says whether the pipeline is applied before the plan is saved.
		apply bool
		// change alters the world after the plan was saved.
		change func(t *testing.T, f *fixture)
		want   []string
		// anyOf: stderr holds at least one of these (the watcher may or
		// may not have restarted the component by then).
		anyOf []string
		// restarting is a component the restart watcher may start again at
		// any time after change: its processes are not compared.
		restarting string
	}{
		{
			name: "state edited", apply: true,
			change: func(t *testing.T, f *fixture) { f.must(0, "state", "rm", "sink.out") },
			want:   []string{"sink.out was removed from the state since the plan was made"},
		},
		{
			// The plan was made with no state (plan creates none); someone
			// applied since.
			name: "state created since",
			change: func(t *testing.T, f *fixture) {
				if _, err := os.Stat(f.statePath()); err == nil {
					t.Fatal("plan created a state")
				}
				f.apply()
			},
			want: []string{"the plan was made with no state, and there is now a state with lineage "},
		},
		{
			// The plan changes processor.mid: its process dying makes the
			// plan stale (a death of a component it leaves alone does not:
			// ci_test.go).
			name: "process died", apply: true,
			change: func(t *testing.T, f *fixture) {
				pid := byAddr(procsOf(f.name))["processor.mid"][0].id.PID
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 5*time.Second, "processor.mid to die", func() bool {
					for _, p := range byAddr(procsOf(f.name))["processor.mid"] {
						if p.id.PID == pid {
							return false
						}
					}
					return true
				})
			},
			anyOf:      []string{"processor.mid changed since the plan was made", "processor.mid, which the plan changes, "},
			restarting: "processor.mid",
		},
		{
			name: "process restarted", apply: true,
			change: func(t *testing.T, f *fixture) { f.restartBehindState(t, "processor.mid") },
			anyOf:  []string{"processor.mid changed since the plan was made: it was restarted or replaced (process object pid=", "processor.mid, which the plan changes, "},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			cs := chain()
			f.writePipeline(cs)
			if tc.apply {
				f.apply()
				cs[1].env["MODE"] = "two"
				f.writePipeline(cs)
			}
			r := f.must(0, "plan", "-out", "saved.plan")
			if !strings.Contains(r.out, "flowctl apply saved.plan") {
				t.Fatalf("plan -out\n%s", r)
			}
			tc.change(t, f)
			others := func() []proc {
				return slices.DeleteFunc(procsOf(f.name), func(p proc) bool { return p.addr == tc.restarting })
			}
			before := others()
			r = f.must(1, "apply", "saved.plan")
			t.Logf("refused: %s", r.err)
			for _, want := range append(tc.want, "the saved plan is stale", "Run flowctl plan again") {
				if !strings.Contains(r.err, want) {
					t.Errorf("stderr lacks %q\n%s", want, r)
				}
			}
			if len(tc.anyOf) > 0 && !slices.ContainsFunc(tc.anyOf, func(w string) bool { return strings.Contains(r.err, w) }) {
				t.Errorf("stderr holds none of %q\n%s", tc.anyOf, r)
			}
			if after := others(); !slices.Equal(after, before) {
				t.Fatalf("a refused plan changed processes: %v -> %v", before, after)
			}
			// A fresh plan applies.
			f.must(0, "plan", "-out", "fresh.plan")
			f.must(0, "apply", "fresh.plan")
			if tc.name == "state created since" {
				f.assertConverged(addrs(cs))
			}
		})
	}
}

// restartBehindState stops a component and starts it again through the
// process executor directly, as something other than this state file's
// flowctl would: state still names the old process.
func (f *fixture) restartBehindState(t *testing.T, addr string) {
	t.Helper()
	rec := f.records()[addr]
	meta := f.meta()
	prov := process.New(process.Options{Dir: filepath.Dir(f.statePath()), ShimCommand: []string{f.flowctl, "__shim"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := prov.Stop(ctx, rec.Handle, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	kind, id, _ := strings.Cut(addr, ".")
	_, err := prov.Start(ctx, providers.ComponentSpec{
		Pipeline: f.name, Lineage: meta.Lineage, InstanceID: "restarted-by-hand", SpecHash: rec.SpecHash,
		Component: &config.Component{Kind: config.Kind(kind), ID: id, Executor: "process", Command: []string{f.tc}},
		Env:       map[string]string{"HEALTH_PORT": itoa(rec.Ports["HEALTH_PORT"]), "PORT": itoa(rec.Ports["PORT"])},
		WorkDir:   f.dir,
	})
	if err != nil {
		t.Fatal(err)
	}
}
