package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/complete"
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
			path, err := config.FindPipelineFile(".", args, config.NoteTo(g.streams.Err))
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
	complete.Values(cmd, "format", graphFormats...)
	addVarFlags(cmd.Flags(), &vars)
	return cmd
}

// renderGraph draws p's component graph in format (text when unknown).
func renderGraph(w io.Writer, p *config.Pipeline, format string) error {
	d, err := graph.NewDiagram(p.Name, diagramNodes(p))
	if err != nil {
		return err
	}
	var out string
	switch format {
	case "dot":
		out = d.Dot()
	case "mermaid":
		out = d.Mermaid()
	default:
		out = d.Text()
	}
	_, err = io.WriteString(w, out)
	return err
}

// diagramNodes are p's components as a diagram shows them: by address,
// labelled with their executor.
func diagramNodes(p *config.Pipeline) []graph.DiagramNode {
	nodes := make([]graph.DiagramNode, len(p.Components))
	for i, c := range p.Components {
		nodes[i] = graph.DiagramNode{
			Name:       c.Address(),
			Label:      fmt.Sprintf("%s (%s)", c.Address(), c.Executor),
			Inputs:     c.Inputs,
			DependsOn:  c.DependsOn,
			References: c.RefTargets(),
		}
	}
	return nodes
}
