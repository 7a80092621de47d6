package graph

import (
	"errors"
	"testing"
)

// shop is a diagram with one edge of each kind; "b" is named by both
// inputs and env in "c", which makes it an input.
func shop(t *testing.T) *Diagram {
	t.Helper()
	d, err := NewDiagram("shop", []DiagramNode{
		{Name: "c", Label: `c "sink"`, Inputs: []string{"b"}, DependsOn: []string{"a"}, References: []string{"b", "gone"}},
		{Name: "a", Label: "a (process)"},
		{Name: "b", Label: "b (docker)", Inputs: []string{"a"}, References: []string{"a"}},
		{Name: "d", Label: "d (nomad)", References: []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDiagramDrawsEachEdgeKindInItsOwnStyle(t *testing.T) {
	d := shop(t)
	for _, tc := range []struct {
		format string
		got    string
		want   string
	}{
		{"text", d.Text(), `pipeline shop: 4 components in 3 levels

level 0
  a (process)

level 1
  b (docker) <- a
  d (nomad) <- a (env)

level 2
  c "sink" <- a (depends_on), b
`},
		{"dot", d.Dot(), `digraph "shop" {
  rankdir = "LR";
  node [shape = "box"];
  { rank = same; "a" [label = "a (process)"]; }
  { rank = same; "b" [label = "b (docker)"]; "d" [label = "d (nomad)"]; }
  { rank = same; "c" [label = "c \"sink\""]; }
  "a" -> "b";
  "a" -> "d" [style = "dotted", label = "env"];
  "a" -> "c" [style = "dashed", label = "depends_on"];
  "b" -> "c";
}
`},
		{"mermaid", d.Mermaid(), `flowchart LR
  subgraph level0["level 0"]
    n0["a (process)"]
  end
  subgraph level1["level 1"]
    n1["b (docker)"]
    n2["d (nomad)"]
  end
  subgraph level2["level 2"]
    n3["c #quot;sink#quot;"]
  end
  n0 --> n1
  n0 -. env .-> n2
  n0 -. depends_on .-> n3
  n1 --> n3
`},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", tc.format, tc.got, tc.want)
		}
	}
}

func TestDiagramTextSaysOneComponentInOneLevel(t *testing.T) {
	d, err := NewDiagram("solo", []DiagramNode{{Name: "a", Label: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Text(), "pipeline solo: 1 component in 1 level\n\nlevel 0\n  a\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNewDiagramNamesTheCycleAndTheTitle(t *testing.T) {
	_, err := NewDiagram("loop", []DiagramNode{
		{Name: "a", Inputs: []string{"b"}},
		{Name: "b", DependsOn: []string{"a"}},
	})
	var ce *CycleError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *CycleError", err)
	}
	if want := "graph of loop: dependency cycle: a -> b -> a"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestEdgeKindStringsAreThePipelineAttributes(t *testing.T) {
	for k, want := range map[EdgeKind]string{EdgeInput: "inputs", EdgeDependsOn: "depends_on", EdgeReference: "env", 0: "EdgeKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("%d: got %q, want %q", int(k), got, want)
		}
	}
}
