package cli

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/config"
)

// validateReport is `flowctl validate -json` output, shaped like Terraform's.
type validateReport struct {
	FormatVersion string                  `json:"format_version"`
	Valid         bool                    `json:"valid"`
	ErrorCount    int                     `json:"error_count"`
	WarningCount  int                     `json:"warning_count"`
	Diagnostics   []config.JSONDiagnostic `json:"diagnostics"`
}

func newValidateCommand(g *globals) *cobra.Command {
	var (
		asJSON bool
		vars   []config.VarArg
	)
	cmd := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a pipeline file and report every problem with its position",
		Long: "Validate loads a pipeline file (HCL or flowctl/v1 YAML), checks it, and reports\n" +
			"every error and warning at the line it concerns. Without FILE it uses the single\n" +
			"pipeline file in the current folder. It exits 1 when the pipeline is invalid.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(g, args, vars, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	addVarFlags(cmd.Flags(), &vars)
	return cmd
}

func runValidate(g *globals, args []string, vars []config.VarArg, asJSON bool) error {
	var diags hcl.Diagnostics
	path, err := config.FindPipelineFile(".", args, config.NoteTo(g.streams.Err))
	if err != nil {
		if !asJSON {
			return err
		}
		diags = hcl.Diagnostics{config.ErrorDiagnostic("No pipeline file", err)}
	} else {
		_, diags = config.Load(path, config.LoadOptions{Vars: vars})
	}
	errs, warns := config.CountDiagnostics(diags)
	if asJSON {
		report := validateReport{
			FormatVersion: "1.0",
			Valid:         errs == 0,
			ErrorCount:    errs,
			WarningCount:  warns,
			Diagnostics:   config.JSONDiagnostics(diags),
		}
		if err := writeJSON(g.streams.Out, report); err != nil {
			return err
		}
	} else {
		out := g.streams.Out
		if err := config.NewDiagPrinter(g.color(out)).Print(out, diags); err != nil {
			return err
		}
		if errs == 0 {
			fmt.Fprintln(out, "Success! The pipeline is valid.")
		} else {
			fmt.Fprintln(out, config.SummaryLine(errs, warns))
		}
	}
	if errs > 0 {
		return errSilent
	}
	return nil
}
