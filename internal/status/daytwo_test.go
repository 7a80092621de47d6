package status

import (
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/state"
)

func TestDeriveShowsNothingOfDestroyedComponents(t *testing.T) {
	desired := &config.Pipeline{Components: []*config.Component{
		{Kind: "source", ID: "a", Executor: "process"},
		{Kind: "sink", ID: "b", Executor: "process", Inputs: []string{"source.a"}},
	}}
	f := &facts{
		now: time.Now(), desired: desired,
		records: []*state.Record{{Address: "source.a", Provider: "process", Status: state.StatusStopped}},
		regs: []controlplane.Registration{
			{ServiceID: "b", Component: "sink.b", Alive: true, Healthy: true},
			{ServiceID: "a", Component: "source.a"},
		},
		dataFlows: []relay.Edge{{From: "source.a", To: "sink.b", Events: 9}},
	}
	doc := derive(f)
	if len(doc.DataFlows) != 0 {
		t.Fatalf("data flows of a destroyed sink: %+v", doc.DataFlows)
	}
	for _, c := range doc.Components {
		if c.Address == "sink.b" && (len(c.RegisteredAs) != 0 || c.State != StateMissing || c.Health != "") {
			t.Fatalf("the destroyed sink's row %+v", c)
		}
	}
	f.records = append(f.records, &state.Record{Address: "sink.b", Provider: "process", Status: state.StatusStopped})
	if doc := derive(f); len(doc.DataFlows) != 1 {
		t.Fatalf("data flows between recorded components: %+v", doc.DataFlows)
	}
}

func TestDeriveSaysTheControlPlaneIsNeededWhileComponentsRun(t *testing.T) {
	running := &observation{}
	running.obs.Exists, running.obs.Running = true, true
	f := &facts{
		now:      time.Now(),
		records:  []*state.Record{{Address: "source.a", Provider: "process", Status: state.StatusRunning, Handle: []byte(`{}`)}},
		observed: map[string]*observation{"source.a": running},
	}
	if doc := derive(f); !doc.ControlPlane.Needed {
		t.Fatalf("control plane %+v with a component running and none serving", doc.ControlPlane)
	}
	f.controlPlane.Running = true
	if doc := derive(f); doc.ControlPlane.Needed {
		t.Fatalf("control plane %+v while one serves", doc.ControlPlane)
	}
}
