package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/graph"
)

// Graph output formats.
var graphFormats = []string{"text", "dot", "mermaid"}

func newGraphCommand(g *globals) *cobra.Command {
	var (
		format string
		vars   []config.VarArg
	)
	cmd := &cobra.Command{
		Use:   "graph [FILE]",
		Short: "Show the pipeline's component graph",
		Long: "Graph prints the components of a pipeline and the edges between them (inputs,\n" +
			"depends_on, and env references), grouped in the levels apply starts them in,\n" +
			"as text, Graphviz dot, or a Mermaid flowchart.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(graphFormats, format) {
				return fmt.Errorf("--format %q: use one of %s", format, strings.Join(graphFormats, ", "))
			}
			path, err := resolvePipelineFile(".", args)
			if err != nil {
				return err
			}
			p, err := loadValidPipeline(g, path, vars)
			if err != nil {
				return err
			}
			return renderGraph(g.streams.Out, p, format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: "+strings.Join(graphFormats, ", "))
	addVarFlags(cmd.Flags(), &vars)
	return cmd
}

// edge is one DAG edge with the attribute that makes it.
type edge struct {
	from, to string
	via      string // "inputs", "depends_on" or "env"
}

// pipelineGraph is what every format draws: the levels and the edges.
type pipelineGraph struct {
	p      *config.Pipeline
	levels [][]string
	edges  []edge
}

func buildPipelineGraph(p *config.Pipeline) (*pipelineGraph, error) {
	addrs := make([]string, len(p.Components))
	for i, c := range p.Components {
		addrs[i] = c.Address()
	}
	g := graph.New(addrs, func(a string) []string { return p.Component(a).Upstreams() })
	levels, err := g.Levels()
	if err != nil {
		return nil, fmt.Errorf("graph of %s: %w", p.Name, err)
	}
	pg := &pipelineGraph{p: p, levels: levels}
	for _, level := range levels {
		for _, a := range level {
			c := p.Component(a)
			for _, up := range g.Upstreams(a) {
				pg.edges = append(pg.edges, edge{from: up, to: a, via: edgeVia(c, up)})
			}
		}
	}
	return pg, nil
}

func edgeVia(c *config.Component, up string) string {
	switch {
	case slices.Contains(c.Inputs, up):
		return "inputs"
	case slices.Contains(c.DependsOn, up):
		return "depends_on"
	}
	return "env"
}

func renderGraph(w io.Writer, p *config.Pipeline, format string) error {
	pg, err := buildPipelineGraph(p)
	if err != nil {
		return err
	}
	var out string
	switch format {
	case "dot":
		out = pg.dot()
	case "mermaid":
		out = pg.mermaid()
	default:
		out = pg.text()
	}
	_, err = io.WriteString(w, out)
	return err
}

func (pg *pipelineGraph) label(addr string) string {
	return fmt.Sprintf("%s (%s)", addr, pg.p.Component(addr).Executor)
}

// text lists the levels in start order, each component with its upstreams.
func (pg *pipelineGraph) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %s: %s in %s\n", pg.p.Name, plural(len(pg.p.Components), "component"), plural(len(pg.levels), "level"))
	for i, level := range pg.levels {
		fmt.Fprintf(&b, "\nlevel %d\n", i)
		for _, a := range level {
			b.WriteString("  " + pg.label(a))
			var ups []string
			for _, e := range pg.edges {
				if e.to != a {
					continue
				}
				if e.via == "inputs" {
					ups = append(ups, e.from)
				} else {
					ups = append(ups, e.from+" ("+e.via+")")
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

// dot renders Graphviz, left to right, one rank per level.
func (pg *pipelineGraph) dot() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n", pg.p.Name)
	b.WriteString("  rankdir = \"LR\";\n  node [shape = \"box\"];\n")
	for _, level := range pg.levels {
		b.WriteString("  { rank = same;")
		for _, a := range level {
			fmt.Fprintf(&b, " %q [label = %q];", a, pg.label(a))
		}
		b.WriteString(" }\n")
	}
	for _, e := range pg.edges {
		switch e.via {
		case "inputs":
			fmt.Fprintf(&b, "  %q -> %q;\n", e.from, e.to)
		case "depends_on":
			fmt.Fprintf(&b, "  %q -> %q [style = \"dashed\", label = \"depends_on\"];\n", e.from, e.to)
		default:
			fmt.Fprintf(&b, "  %q -> %q [style = \"dotted\", label = \"env\"];\n", e.from, e.to)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// mermaid renders a left-to-right flowchart; node ids are positional
// because addresses hold characters Mermaid ids cannot.
func (pg *pipelineGraph) mermaid() string {
	ids := map[string]string{}
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	n := 0
	for i, level := range pg.levels {
		fmt.Fprintf(&b, "  subgraph level%d[\"level %d\"]\n", i, i)
		for _, a := range level {
			ids[a] = fmt.Sprintf("n%d", n)
			n++
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", ids[a], mermaidEscape(pg.label(a)))
		}
		b.WriteString("  end\n")
	}
	for _, e := range pg.edges {
		switch e.via {
		case "inputs":
			fmt.Fprintf(&b, "  %s --> %s\n", ids[e.from], ids[e.to])
		default:
			fmt.Fprintf(&b, "  %s -. %s .-> %s\n", ids[e.from], e.via, ids[e.to])
		}
	}
	return b.String()
}

func mermaidEscape(s string) string { return strings.ReplaceAll(s, `"`, "#quot;") }
