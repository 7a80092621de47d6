package plan

import (
	"context"
	"testing"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

func TestPlanReplacesInstancesWhoseTokenSecretWasRotated(t *testing.T) {
	desired := loadPipeline(t, basePipeline)
	prov := newFake()
	a, b, c := desired.Components[0], desired.Components[1], desired.Components[2]
	ra := record(a, run(prov, a.Address(), "fpa", a.SpecHash(testSpecKey), true), state.StatusRunning)
	rb := record(b, run(prov, b.Address(), "fpb", b.SpecHash(testSpecKey), true), state.StatusRunning)
	rc := record(c, run(prov, c.Address(), "fpc", c.SpecHash(testSpecKey), true), state.StatusRunning)
	ra.TokenGeneration = 1 // token signed before the rotation
	rb.TokenGeneration = 2 // started after it
	rc.TokenGeneration = 0 // given no token: nothing to replace
	p, err := Make(context.Background(), Input{SpecKey: testSpecKey,
		Desired: desired, Meta: state.Meta{Lineage: "L1", Pipeline: "demo", Serial: 3, TokenGeneration: 2},
		Records: []*state.Record{ra, rb, rc}, Providers: providers.NewRegistry(prov),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[1] -/+ source.a (replace: token_rotated)\n[2]   processor.b (no-op: up_to_date)\n[3]   sink.c (no-op: up_to_date)\n"
	if got := p.String(); got != want {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, want)
	}
	if d := ReasonTokenRotated.Describe(); d == string(ReasonTokenRotated) {
		t.Fatal("token_rotated has no human description")
	}
}
