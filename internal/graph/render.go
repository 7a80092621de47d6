package graph

import (
	"fmt"
	"slices"
	"strings"
)

// EdgeKind is the attribute that makes an edge; diagrams draw each kind in
// its own style. The values are explicit so that adding one never shifts
// another.
type EdgeKind int

// Edge kinds, in the order a diagram prefers them when one upstream is
// named by several attributes.
const (
	EdgeInput     EdgeKind = 1 // inputs: the downstream consumes the upstream's events
	EdgeDependsOn EdgeKind = 2 // depends_on: ordering only
	EdgeReference EdgeKind = 3 // a reference in env, resolved after apply
)

// String is the attribute's name as a pipeline file spells it ("env" for a
// reference).
func (k EdgeKind) String() string {
	switch k {
	case EdgeInput:
		return "inputs"
	case EdgeDependsOn:
		return "depends_on"
	case EdgeReference:
		return "env"
	}
	return fmt.Sprintf("EdgeKind(%d)", int(k))
}

// DiagramNode is one node as a diagram shows it, with the upstreams each of
// its attributes names. Names that are not nodes are ignored, as in New.
type DiagramNode struct {
	Name       string
	Label      string
	Inputs     []string
	DependsOn  []string
	References []string
}

// kindOf is the kind of the edge from up to n: the first attribute of n
// that names up.
func (n DiagramNode) kindOf(up string) EdgeKind {
	switch {
	case slices.Contains(n.Inputs, up):
		return EdgeInput
	case slices.Contains(n.DependsOn, up):
		return EdgeDependsOn
	}
	return EdgeReference
}

// diagramEdge is one edge of a diagram, in data-flow direction.
type diagramEdge struct {
	from, to string
	kind     EdgeKind
}

// Diagram is a titled graph laid out in topological levels, ready to be
// drawn as text, Graphviz dot or a Mermaid flowchart. Every drawing lists
// the levels in start order and, within a level, the nodes sorted.
type Diagram struct {
	title  string
	count  int
	labels map[string]string
	levels [][]string
	edges  []diagramEdge // by downstream in level order, then upstream sorted
}

// NewDiagram lays out nodes; it fails with a *CycleError (wrapped, naming
// title) when their edges form a cycle.
func NewDiagram(title string, nodes []DiagramNode) (*Diagram, error) {
	byName := make(map[string]DiagramNode, len(nodes))
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
		if _, dup := byName[n.Name]; !dup {
			byName[n.Name] = n
		}
	}
	g := New(names, func(name string) []string {
		n := byName[name]
		return slices.Concat(n.Inputs, n.DependsOn, n.References)
	})
	levels, err := g.Levels()
	if err != nil {
		return nil, fmt.Errorf("graph of %s: %w", title, err)
	}
	d := &Diagram{title: title, count: len(nodes), labels: make(map[string]string, len(byName)), levels: levels}
	for _, level := range levels {
		for _, name := range level {
			n := byName[name]
			d.labels[name] = n.Label
			for _, up := range g.Upstreams(name) {
				d.edges = append(d.edges, diagramEdge{from: up, to: name, kind: n.kindOf(up)})
			}
		}
	}
	return d, nil
}

// Text lists the levels in start order, each node with its upstreams; an
// upstream that is not an input says which attribute names it.
func (d *Diagram) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %s: %s in %s\n", d.title, plural(d.count, "component"), plural(len(d.levels), "level"))
	for i, level := range d.levels {
		fmt.Fprintf(&b, "\nlevel %d\n", i)
		for _, name := range level {
			b.WriteString("  " + d.labels[name])
			var ups []string
			for _, e := range d.edges {
				if e.to != name {
					continue
				}
				if e.kind == EdgeInput {
					ups = append(ups, e.from)
				} else {
					ups = append(ups, e.from+" ("+e.kind.String()+")")
				}
			}
			if len(ups) > 0 {
				b.WriteString(" <- " + strings.Join(ups, ", "))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// Dot draws Graphviz, left to right, one rank per level; depends_on edges
// are dashed, references dotted.
func (d *Diagram) Dot() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n", d.title)
	b.WriteString("  rankdir = \"LR\";\n  node [shape = \"box\"];\n")
	for _, level := range d.levels {
		b.WriteString("  { rank = same;")
		for _, name := range level {
			fmt.Fprintf(&b, " %q [label = %q];", name, d.labels[name])
		}
		b.WriteString(" }\n")
	}
	for _, e := range d.edges {
		switch e.kind {
		case EdgeInput:
			fmt.Fprintf(&b, "  %q -> %q;\n", e.from, e.to)
		case EdgeDependsOn:
			fmt.Fprintf(&b, "  %q -> %q [style = \"dashed\", label = \"depends_on\"];\n", e.from, e.to)
		default:
			fmt.Fprintf(&b, "  %q -> %q [style = \"dotted\", label = \"env\"];\n", e.from, e.to)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// Mermaid draws a left-to-right flowchart, one subgraph per level. Node ids
// are positional (n0, n1, …) because names may hold characters Mermaid ids
// cannot.
func (d *Diagram) Mermaid() string {
	ids := map[string]string{}
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	n := 0
	for i, level := range d.levels {
		fmt.Fprintf(&b, "  subgraph level%d[\"level %d\"]\n", i, i)
		for _, name := range level {
			ids[name] = fmt.Sprintf("n%d", n)
			n++
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", ids[name], mermaidEscape(d.labels[name]))
		}
		b.WriteString("  end\n")
	}
	for _, e := range d.edges {
		if e.kind == EdgeInput {
			fmt.Fprintf(&b, "  %s --> %s\n", ids[e.from], ids[e.to])
		} else {
			fmt.Fprintf(&b, "  %s -. %s .-> %s\n", ids[e.from], e.kind, ids[e.to])
		}
	}
	return b.String()
}

// mermaidEscape keeps a label inside its quotes: Mermaid has no backslash
// escapes, only entity codes.
func mermaidEscape(s string) string { return strings.ReplaceAll(s, `"`, "#quot;") }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
