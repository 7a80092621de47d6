package plan

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// BenchmarkPlan measures Make's own cost on a pipeline that is fully
// applied and running: every component in state, every object observed
// running with its recorded spec hash, so the plan is all no-ops. Reality
// comes from the fake executor (providertest, its call log off), which
// answers Observe and List from a map, so executors cost nothing here.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{100, 1000, 5000, 10000} {
		b.Run(fmt.Sprintf("components=%d", n), func(b *testing.B) {
			in := benchInput(b, n)
			p, err := Make(context.Background(), in)
			if err != nil {
				b.Fatal(err)
			}
			if p.HasChanges() || len(p.Changes) != n {
				b.Fatalf("want %d no-ops, got %d changes:\n%s", n, len(p.Changes), p)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Make(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchInput builds a layered DAG of n components, ten per layer, each
// reading two components of the layer before, with state and reality to
// match.
func benchInput(b *testing.B, n int) Input {
	b.Helper()
	const width = 10
	var src strings.Builder
	src.WriteString("pipeline \"demo\" {\n  executor = \"process\"\n}\n")
	for i := range n {
		kind, layer := "processor", i/width
		if layer == 0 {
			kind = "source"
		}
		fmt.Fprintf(&src, "%s \"c%05d\" {\n  command = [\"./bin/component\", \"--index\", \"%d\"]\n", kind, i, i)
		fmt.Fprintf(&src, "  env = {\n    LAYER = \"%d\"\n    NETWORK = \"testnet\"\n    BATCH = \"100\"\n  }\n", layer)
		src.WriteString("  health {\n    http = \"/health\"\n  }\n")
		if layer > 0 {
			prev := (layer - 1) * width
			fmt.Fprintf(&src, "  inputs = [processor.c%05d, processor.c%05d]\n", prev+i%width, prev+(i+1)%width)
		}
		src.WriteString("}\n")
	}
	text := strings.ReplaceAll(src.String(), "[processor.c0000", "[source.c0000")
	text = strings.ReplaceAll(text, ", processor.c0000", ", source.c0000")
	desired, diags := config.LoadBytes([]byte(text), "bench.hcl", config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		b.Fatalf("load: %s", config.FormatDiagnostics(diags))
	}
	prov := newFake()
	prov.Quiet()
	var records []*state.Record
	for _, c := range desired.Components {
		h := run(prov, c.Address(), "pid="+c.ID, c.SpecHash(testSpecKey), true)
		records = append(records, record(c, h, state.StatusRunning))
	}
	return Input{SpecKey: testSpecKey,
		Desired:   desired,
		Meta:      state.Meta{Lineage: "L1", Serial: 1, Pipeline: "demo"},
		Records:   records,
		Providers: providers.NewRegistry(prov),
	}
}
