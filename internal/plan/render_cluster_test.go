package plan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/state"
)

// TestRenderPrintsWhatTheClusterWouldChange: the paths an executor's dry
// run reported are printed under the change, and are in the JSON form.
func TestRenderPrintsWhatTheClusterWouldChange(t *testing.T) {
	p := &Plan{Pipeline: "ttp", Changes: []*Change{{Address: "source.ledger", Action: Update, Reason: ReasonSpecChanged,
		Provider: "kubernetes", ClusterChanges: []string{"spec.replicas", "spec.template.spec.containers[0].env[FOO]"}}}}
	var out bytes.Buffer
	Render(&out, p, RenderOptions{})
	want := "        # the cluster would change: spec.replicas, spec.template.spec.containers[0].env[FOO]\n    }\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("rendered:\n%s\nwant the line:\n%s", out.String(), want)
	}
	b, err := json.Marshal(p.Changes[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"cluster_changes":["spec.replicas","spec.template.spec.containers[0].env[FOO]"]`) {
		t.Errorf("json: %s", b)
	}
	p.Changes[0].ClusterChanges = nil
	out.Reset()
	Render(&out, p, RenderOptions{})
	if strings.Contains(out.String(), "cluster would change") {
		t.Errorf("no changes, yet:\n%s", out.String())
	}
}

// TestDecideCarriesClusterChangesToUpdatesAndReplacesOnly: the paths a dry
// run reported go on the change of an existing object, not on a no-op,
// and not when the plan does not refresh.
func TestDecideCarriesClusterChangesToUpdatesAndReplacesOnly(t *testing.T) {
	base := loadPipeline(t, basePipeline)
	changed := loadPipeline(t, strings.Replace(basePipeline, `"fast"`, `"slow"`, 1))
	a, b, c := base.Components[0], base.Components[1], base.Components[2]
	for _, refresh := range []bool{true, false} {
		w := &world{}
		w.both(a, b, c)
		w.reality.ClusterChanges = map[string][]string{"source.a": {"spec.template.spec.containers[0].env[MODE]"}, "sink.c": {"spec.replicas"}}
		p, err := Decide(Input{SpecKey: testSpecKey, Desired: changed, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records,
			Options: Options{NoRefresh: !refresh}}, w.reality)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range p.Changes {
			var want []string
			if refresh && ch.Address == "source.a" {
				want = []string{"spec.template.spec.containers[0].env[MODE]"}
			}
			if strings.Join(ch.ClusterChanges, ",") != strings.Join(want, ",") {
				t.Errorf("refresh %v: %s (%s): cluster changes %v, want %v", refresh, ch.Address, ch.Action, ch.ClusterChanges, want)
			}
		}
	}
}
