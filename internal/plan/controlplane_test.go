package plan

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

func TestTheControlPlaneOfRunningComponentsIsPartOfReality(t *testing.T) {
	base := loadPipeline(t, basePipeline)
	a, b, c := base.Components[0], base.Components[1], base.Components[2]
	down := &ControlPlaneSeen{Managed: true, Detail: "it is not running: pid 4641 exited", Listen: "127.0.0.1:8080"}
	mute := &ControlPlaneSeen{Managed: true, Running: true, Detail: "pid 4641 does not answer on 127.0.0.1:8080", Listen: "127.0.0.1:8080"}
	up := &ControlPlaneSeen{Managed: true, Running: true, Answering: true}
	tests := []struct {
		name  string
		cp    *ControlPlaneSeen
		world func(w *world)
		opts  Options
		want  string
	}{
		{
			name:  "a control plane that is down while components run is started, though nothing else changes",
			cp:    down,
			world: func(w *world) { w.both(a, b, c) },
			want:  "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n[4] + control_plane (start: control_plane_not_running)\n",
		},
		{
			name:  "one that runs but does not answer is restarted",
			cp:    mute,
			world: func(w *world) { w.both(a, b, c) },
			want:  "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n[4] -/+ control_plane (restart: control_plane_not_answering)\n",
		},
		{
			name:  "one that answers is left alone",
			cp:    up,
			world: func(w *world) { w.both(a, b, c) },
			want:  "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
		{
			name: "nothing runs: nothing needs it (apply starts one for what it starts)",
			cp:   down,
			world: func(w *world) {
				w.recorded(a, state.StatusRunning)
				w.observed(a, func(o *providers.Observed) { o.Running = false })
			},
			want: "[1] ^ source.a (restart: exited)\n[2] + processor.b (create: not_in_state)\n[3] + sink.c (create: not_in_state)\n",
		},
		{
			name:  "a destroy stops it: nothing is planned for it",
			cp:    down,
			world: func(w *world) { w.both(a, b, c) },
			opts:  Options{Destroy: true},
			want:  "[1] - sink.c (delete: destroy_requested)\n[2] - processor.b (delete: destroy_requested)\n[3] - source.a (delete: destroy_requested)\n",
		},
		{
			name:  "one the pipeline or the operator names is theirs",
			cp:    &ControlPlaneSeen{},
			world: func(w *world) { w.both(a, b, c) },
			want:  "[1]   source.a (no-op: up_to_date)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w world
			tt.world(&w)
			p, err := Decide(Input{SpecKey: testSpecKey, Desired: base, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records, Options: tt.opts, ControlPlane: tt.cp}, w.reality)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Fatalf("plan:\n%s\nwant:\n%s", got, tt.want)
			}
			if wantChanges := strings.ContainsAny(tt.want, "+^") || strings.Contains(tt.want, "] - "); p.HasChanges() != wantChanges {
				t.Fatalf("HasChanges %t", p.HasChanges())
			}
		})
	}
}

func TestAControlPlaneChangeIsRenderedAndCounted(t *testing.T) {
	base := loadPipeline(t, basePipeline)
	var w world
	w.both(base.Components...)
	p, err := Decide(Input{SpecKey: testSpecKey, Desired: base, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records,
		ControlPlane: &ControlPlaneSeen{Managed: true, Detail: "it is not running: pid 4641 exited", Listen: "127.0.0.1:8080"}}, w.reality)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Render(&out, p, RenderOptions{})
	want := `flowctl will perform the following actions:

  # control plane will be started (it is not running: pid 4641 exited)
  + control_plane {
      + listen = "127.0.0.1:8080"
    }

Plan: 0 to add, 0 to change, 0 to replace, 0 to destroy, control plane to start.
`
	if out.String() != want {
		t.Fatalf("rendered:\n%s\nwant:\n%s", out.String(), want)
	}
}
