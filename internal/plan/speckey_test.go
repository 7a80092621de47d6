package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/state"
)

// testSpecKey keys the spec hashes of the tests' sensitive values.
var testSpecKey = mustSpecKey(bytes.Repeat([]byte{7}, 32))

func mustSpecKey(b []byte) *config.SpecKey {
	k, err := config.NewSpecKey(b)
	if err != nil {
		panic(err)
	}
	return k
}

// withSecret is basePipeline with processor.b's sensitive TOKEN set to v.
func withSecret(t *testing.T, v string) *config.Pipeline {
	t.Helper()
	return loadPipeline(t, strings.Replace(basePipeline, `default   = "hunter2"`, fmt.Sprintf("default   = %q", v), 1))
}

// unkeyed makes w's records and objects of c carry the hash flowctl wrote
// before spec hashes were keyed.
func unkeyed(w *world, c *config.Component) {
	for _, r := range w.records {
		if r.Address == c.Address() {
			r.SpecHash = c.UnkeyedSpecHash()
		}
	}
	if o := w.reality.Observed[c.Address()]; o != nil {
		o.SpecHash = c.UnkeyedSpecHash()
	}
	for i := range w.reality.Listed {
		if w.reality.Listed[i].Object.Address == c.Address() {
			w.reality.Listed[i].Object.SpecHash = c.UnkeyedSpecHash()
		}
	}
}

func TestAStateWrittenBeforeKeyedHashesPlansNoChanges(t *testing.T) {
	desired := withSecret(t, "hunter2")
	var w world
	w.both(desired.Components...)
	b := desired.Component("processor.b")
	unkeyed(&w, b)
	p, err := Decide(Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records}, w.reality)
	if err != nil {
		t.Fatal(err)
	}
	if p.HasChanges() || len(p.Drift) > 0 {
		t.Fatalf("an unchanged pipeline whose state and object hold unkeyed hashes plans:\n%s", summary(p))
	}
	ch := changeOf(p, "processor.b")
	if ch.SpecHash != b.SpecHash(testSpecKey) || ch.SpecHash == b.UnkeyedSpecHash() {
		t.Errorf("the plan carries hash %s, not the keyed one (apply records it)", ch.SpecHash)
	}

	// A changed secret is a change, whichever hash state holds.
	changed := withSecret(t, "hunter3")
	p, err = Decide(Input{SpecKey: testSpecKey, Desired: changed, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records}, w.reality)
	if err != nil {
		t.Fatal(err)
	}
	if got := changeOf(p, "processor.b"); got.Action == NoOp {
		t.Fatalf("a changed secret over an unkeyed state plans no change:\n%s", summary(p))
	}
}

func TestAnUnrecordedObjectWithAnUnkeyedHashIsAdopted(t *testing.T) {
	desired := withSecret(t, "hunter2")
	b := desired.Component("processor.b")
	o := objectOf(b)
	o.SpecHash = b.UnkeyedSpecHash()
	var w world
	w.unrecorded(o)
	p, err := Decide(Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records}, w.reality)
	if err != nil {
		t.Fatal(err)
	}
	if got := changeOf(p, "processor.b"); got.Action != Adopt {
		t.Fatalf("processor.b: %s, want adopt:\n%s", got.Action, summary(p))
	}
}

func TestChangingASensitiveValueIsAnUpdateThatShowsNoValue(t *testing.T) {
	old, desired := withSecret(t, "hunter2"), withSecret(t, "SUPERSECRET-abc123")
	var w world
	w.both(old.Components...)
	p, err := Decide(Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records}, w.reality)
	if err != nil {
		t.Fatal(err)
	}
	ch := changeOf(p, "processor.b")
	if ch.Action == NoOp {
		t.Fatalf("a changed secret plans no change:\n%s", summary(p))
	}
	var named bool
	for _, a := range ch.Attrs {
		named = named || (a.Path == "env.TOKEN" && a.Sensitive)
	}
	if !named {
		t.Errorf("the change does not name env.TOKEN as a sensitive change: %+v", ch.Attrs)
	}
	var out strings.Builder
	Render(&out, p, RenderOptions{})
	b, _ := json.Marshal(p)
	for _, s := range []string{out.String(), string(b)} {
		if strings.Contains(s, "SUPERSECRET") || strings.Contains(s, "hunter2") {
			t.Errorf("the plan shows a secret:\n%s", s)
		}
	}
	for _, c := range []*Change{ch, changeOf(p, "source.a")} {
		if c.Address == "processor.b" && c.SpecHash == desired.Component("processor.b").UnkeyedSpecHash() {
			t.Error("the plan carries an unkeyed hash of a sensitive spec")
		}
	}
}

func TestPlanningSensitiveValuesWithoutAKeyIsRefused(t *testing.T) {
	desired := withSecret(t, "hunter2")
	if _, err := Decide(Input{Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}}, Reality{}); err == nil {
		t.Fatal("a pipeline with sensitive values was planned without a spec hash key")
	}
}

// changeOf is p's change of addr (a zero Change when there is none).
func changeOf(p *Plan, addr string) *Change {
	for _, ch := range p.Changes {
		if ch.Address == addr {
			return ch
		}
	}
	return &Change{Address: addr}
}

func TestHashesMadeWithAnotherMachinesKeyAreRefusedNotReplaced(t *testing.T) {
	desired := withSecret(t, "hunter2")
	var w world
	w.both(desired.Components...)
	other := mustSpecKey(bytes.Repeat([]byte{9}, 32))
	in := Input{SpecKey: other, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: w.records}
	_, err := Decide(in, w.reality)
	if err == nil || !strings.Contains(err.Error(), "processor.b (key "+testSpecKey.ID()+")") || !strings.Contains(err.Error(), config.SpecKeyFileName) {
		t.Fatalf("state hashed with key %s, planned with %s: %v", testSpecKey.ID(), other.ID(), err)
	}
	in.SpecKey = testSpecKey
	if p, err := Decide(in, w.reality); err != nil || p.HasChanges() {
		t.Fatalf("with the state's own key: %v\n%v", err, p)
	}
}
