package cli

import (
	"fmt"

	"github.com/flowctl/flowctl/internal/complete"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/spf13/cobra"
)

func newShowCommand(g *globals) *cobra.Command {
	var (
		asJSON bool
		format string
	)
	cmd := &cobra.Command{
		Use:   "show [-json | -format text|json|markdown] PLANFILE",
		Short: "Show a saved plan",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return nil
			}
			return fmt.Errorf("show needs one argument, a plan file saved with 'flowctl plan -out FILE' (got %d)", len(args))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := plan.ReadArg(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				format = "json"
			}
			switch format {
			case "json":
				return writePlanJSON(g, f.Plan)
			case "markdown":
				plan.RenderMarkdown(g.streams.Out, f)
				return nil
			case "text":
			default:
				return fmt.Errorf("show -format %q: the formats are text, json and markdown", format)
			}
			fmt.Fprintf(g.streams.Out, "%s\n\n", f.Heading())
			plan.Render(g.streams.Out, f.Plan, plan.RenderOptions{Color: g.color(g.streams.Out)})
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (see docs/plan-format.md); the same as -format json")
	cmd.Flags().StringVar(&format, "format", "text", "text, json, or markdown (a collapsible summary for a pull request comment)")
	complete.Values(cmd, "format", "text", "json", "markdown")
	return cmd
}
