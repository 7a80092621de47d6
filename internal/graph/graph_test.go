package graph

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func build(edges map[string][]string) *Graph {
	var nodes []string
	for n, ups := range edges {
		nodes = append(nodes, n)
		nodes = append(nodes, ups...)
	}
	return New(nodes, func(n string) []string { return edges[n] })
}

func TestLevelsGroupNodesByLongestPathFromARoot(t *testing.T) {
	g := build(map[string][]string{
		"sink.out":      {"processor.b", "source.a"},
		"processor.b":   {"source.a"},
		"processor.c":   {"source.a"},
		"source.a":      nil,
		"source.lonely": nil,
	})
	levels, err := g.Levels()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"source.a", "source.lonely"}, {"processor.b", "processor.c"}, {"sink.out"}}
	if !reflect.DeepEqual(levels, want) {
		t.Fatalf("levels = %v, want %v", levels, want)
	}
	rev, _ := g.Reverse()
	if want := []string{"sink.out", "processor.c", "processor.b", "source.lonely", "source.a"}; !reflect.DeepEqual(rev, want) {
		t.Fatalf("reverse = %v, want %v", rev, want)
	}
	if d := g.Descendants("source.a"); !reflect.DeepEqual(d, []string{"processor.b", "processor.c", "sink.out"}) {
		t.Fatalf("descendants = %v", d)
	}
	if a := g.Ancestors("sink.out"); !reflect.DeepEqual(a, []string{"processor.b", "source.a"}) {
		t.Fatalf("ancestors = %v", a)
	}
}

func TestCycleIsReportedAsAPathInDataFlowOrder(t *testing.T) {
	g := build(map[string][]string{
		"a": {"c"}, // c -> a
		"b": {"a"}, // a -> b
		"c": {"b"}, // b -> c
		"d": {"a"},
	})
	if got := strings.Join(g.Cycle(), " -> "); got != "a -> b -> c -> a" {
		t.Fatalf("cycle = %q", got)
	}
	_, err := g.Order()
	var ce *CycleError
	if !errors.As(err, &ce) || ce.Error() != "dependency cycle: a -> b -> c -> a" {
		t.Fatalf("err = %v", err)
	}
}

func TestSelfLoopIsACycle(t *testing.T) {
	g := build(map[string][]string{"a": {"a"}})
	if got := g.Cycle(); !reflect.DeepEqual(got, []string{"a", "a"}) {
		t.Fatalf("cycle = %v", got)
	}
}

func TestEdgesToUnknownNodesAreIgnored(t *testing.T) {
	g := New([]string{"b"}, func(string) []string { return []string{"missing"} })
	if got := g.String(); got != "b\n" {
		t.Fatalf("graph = %q", got)
	}
}

func TestSubgraphKeepsEdgesBetweenKeptNodes(t *testing.T) {
	g := build(map[string][]string{"b": {"a"}, "c": {"b"}})
	if got := g.Subgraph([]string{"b", "c"}).String(); got != "b -> c\n" {
		t.Fatalf("subgraph = %q", got)
	}
}

func TestLevelsOfALargeLayeredDAG(t *testing.T) {
	edges := map[string][]string{}
	const width, depth = 50, 20
	name := func(l, i int) string { return string(rune('a'+l)) + "." + strings.Repeat("x", i+1) }
	for l := 0; l < depth; l++ {
		for i := 0; i < width; i++ {
			if l == 0 {
				edges[name(l, i)] = nil
				continue
			}
			edges[name(l, i)] = []string{name(l-1, i), name(l-1, (i+1)%width)}
		}
	}
	levels, err := build(edges).Levels()
	if err != nil {
		t.Fatal(err)
	}
	if len(levels) != depth {
		t.Fatalf("got %d levels, want %d", len(levels), depth)
	}
	for _, l := range levels {
		if len(l) != width {
			t.Fatalf("level width %d, want %d", len(l), width)
		}
	}
}
