package e2e

import (
	"fmt"
	"testing"
)

// TestKillDashNineMidApplyOfAThousandConverges is the kill -9 test at the
// scale of issue #18: an apply of 1,000 process components (ten layers of
// 100, each reading two of the layer before, no health block) is killed
// once half of them have started; the plan that follows proposes only
// what a crash may leave (adoptions, starts, orphans to delete, tainted
// replacements), the next apply converges — every component recorded and
// running once, no live process that state does not record — and a
// destroy leaves nothing behind.
func TestKillDashNineMidApplyOfAThousandConverges(t *testing.T) {
	const layers, width = 10, 100
	f := newFixture(t)
	var cs []comp
	addr := func(l, i int) string {
		if l == 0 {
			return fmt.Sprintf("source.l0-c%d", i)
		}
		return fmt.Sprintf("processor.l%d-c%d", l, i)
	}
	for l := range layers {
		for i := range width {
			c := comp{kind: "processor", id: fmt.Sprintf("l%d-c%d", l, i), health: "-"}
			if l == 0 {
				c.kind = "source"
			} else {
				c.inputs = []string{addr(l-1, i), addr(l-1, (i+1)%width)}
			}
			cs = append(cs, c)
		}
	}
	f.writePipeline(cs)
	f.killDuring(killPoint{name: "apply/half-started", op: []string{"apply", "-auto-approve", "-parallelism", "20"},
		when: atLeast(layers * width / 2)})

	p := f.plan()
	if len(p.Changes) == 0 {
		t.Fatal("the plan after the kill proposes nothing")
	}
	for _, a := range p.actions() {
		if !allowedAfterCrash(a, false) {
			t.Errorf("plan after a crash proposes %q", a)
		}
	}
	f.apply("-parallelism", "20")
	f.assertConverged(addrs(cs))
	f.must(0, "destroy", "-auto-approve", "-parallelism", "50")
	f.assertNoProcesses()
}
