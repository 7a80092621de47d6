package plan

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

func TestHashAndSpecAreThoseOfConfig(t *testing.T) {
	for _, c := range loadPipeline(t, basePipeline).Components {
		hash, spec := hashAndSpec(c, testSpecKey)
		if hash != c.SpecHash(testSpecKey) {
			t.Errorf("%s: hash %s, config says %s", c.Address(), hash, c.SpecHash(testSpecKey))
		}
		if want := c.Redacted().CanonicalJSON(); !bytes.Equal(spec, want) {
			t.Errorf("%s: spec\n%s\nwant\n%s", c.Address(), spec, want)
		}
		if bytes.Contains(spec, []byte("hunter2")) {
			t.Errorf("%s: the spec holds the sensitive value", c.Address())
		}
	}
}

func TestUpToDateComponentsCarryNoAttributeDiff(t *testing.T) {
	desired := loadPipeline(t, basePipeline)
	prov := newFake()
	var recs []*state.Record
	for _, c := range desired.Components {
		recs = append(recs, record(c, run(prov, c.Address(), "pid="+c.ID, c.SpecHash(testSpecKey), true), state.StatusRunning))
	}
	p, err := Make(context.Background(), Input{SpecKey: testSpecKey, Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo"}, Records: recs, Providers: providers.NewRegistry(prov)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range p.Changes {
		if ch.Action != NoOp || len(ch.Attrs) != 0 || len(ch.ForcedBy) != 0 {
			t.Errorf("%s: %s with %d attributes", ch.Address, ch.Action, len(ch.Attrs))
		}
	}
}

func TestRealityDiffSaysWhatHappened(t *testing.T) {
	running := func(addr, fp string) Seen {
		return Seen{Address: addr, Provider: "process", Exists: true, Running: true, Fingerprint: fp, InState: true}
	}
	stopped := running("a", "pid=1")
	stopped.Running = false
	missing := Seen{Address: "a", Provider: "process", InState: true}
	cases := []struct {
		name      string
		then, now []Seen
		want      string
	}{
		{"nothing", []Seen{running("a", "pid=1")}, []Seen{running("a", "pid=1")}, ""},
		{"stopped", []Seen{running("a", "pid=1")}, []Seen{stopped}, "a changed since the plan was made: it stopped (process object pid=1 was running)"},
		{"started", []Seen{stopped}, []Seen{running("a", "pid=1")}, "a changed since the plan was made: it started (process object pid=1 was not running)"},
		{"gone", []Seen{running("a", "pid=1")}, []Seen{missing}, "a changed since the plan was made: it is gone (process object pid=1 no longer exists)"},
		{"restarted", []Seen{running("a", "pid=1")}, []Seen{missing, running("a", "pid=2")}, "a changed since the plan was made: it was restarted or replaced (process object pid=1 is gone; process object pid=2 is there instead)"},
		{"appeared", nil, []Seen{running("b", "pid=3")}, "b changed since the plan was made: a new object appeared (process object pid=3)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(realityDiff(tc.then, tc.now), "\n"); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
