package cli

import (
	"fmt"

	"github.com/flowctl/flowctl/internal/plan"
	"github.com/spf13/cobra"
)

func newShowCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [-json] PLANFILE",
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
				return writePlanJSON(g, f.Plan)
			}
			fmt.Fprintf(g.streams.Out, "Saved plan for pipeline %s (%s), made %s against state serial %d.\n\n",
				f.Plan.Pipeline, f.PipelineFile, f.CreatedAt.Local().Format("2006-01-02 15:04:05"), f.Plan.Serial)
			plan.Render(g.streams.Out, f.Plan, plan.RenderOptions{Color: g.color(g.streams.Out)})
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (see docs/plan-format.md)")
	return cmd
}
