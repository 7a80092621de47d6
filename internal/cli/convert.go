package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/complete"
	"github.com/flowctl/flowctl/internal/config"
)

func newConvertCommand(g *globals) *cobra.Command {
	var (
		to, out string
		vars    []config.VarArg
	)
	cmd := &cobra.Command{
		Use:   "convert [FILE] [--to hcl|yaml] [-o OUT]",
		Short: "Convert a pipeline between HCL and flowctl/v1 YAML",
		Long: "Convert writes a valid pipeline in the other format (or the one --to names) to\n" +
			"standard output or OUT. Before writing, it loads the converted text back and\n" +
			"checks that it describes exactly the same pipeline (the same canonical hash);\n" +
			"if not, it writes nothing and fails. HCL variables and locals are written as\n" +
			"their values.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConvert(g, args, to, out, vars)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "target format: hcl or yaml (default: the other one)")
	complete.Values(cmd, "to", "hcl", "yaml")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write to this file instead of standard output")
	addVarFlags(cmd.Flags(), &vars)
	return cmd
}

func runConvert(g *globals, args []string, to, out string, vars []config.VarArg) error {
	path, err := config.FindPipelineFile(".", args, config.NoteTo(g.streams.Err))
	if err != nil {
		return err
	}
	to, err = targetFormat(path, to)
	if err != nil {
		return err
	}
	p, err := loadValidPipeline(g, path, vars)
	if err != nil {
		return err
	}
	data, err := convertPipeline(g, p, to, out)
	if err != nil {
		return err
	}
	sensitive := config.SensitiveEnv(p)
	if len(sensitive) > 0 {
		fmt.Fprintf(g.streams.Err, "Warning: the converted pipeline holds sensitive values in clear text: env %s.%s Keep it out of version control.\n",
			strings.Join(sensitive, ", "), sensitivityNote(to))
	}
	if out == "" || out == "-" {
		_, err := g.streams.Out.Write(data)
		return err
	}
	mode := fs.FileMode(0o644)
	if len(sensitive) > 0 {
		mode = 0o600
	}
	if err := config.WriteFileAtomic(out, data, mode); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Err, "Wrote %s (%s).\n", out, to)
	return nil
}

func sensitivityNote(format string) string {
	if format == config.FormatYAML {
		return " YAML cannot mark them sensitive, so plans will show them."
	}
	return " They are the defaults of sensitive variables."
}

// targetFormat checks --to, or picks the format path is not in.
func targetFormat(path, to string) (string, error) {
	switch to {
	case config.FormatHCL, config.FormatYAML:
		return to, nil
	case "yml":
		return config.FormatYAML, nil
	case "":
		src, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("convert: %w", err)
		}
		if config.DetectFormat(path, src) == config.FormatHCL {
			return config.FormatYAML, nil
		}
		return config.FormatHCL, nil
	}
	return "", fmt.Errorf("--to %q: use hcl or yaml", to)
}

// convertPipeline converts p, showing why the result does not load back if
// it does not: a conversion that changed meaning must never be written.
func convertPipeline(g *globals, p *config.Pipeline, format, out string) ([]byte, error) {
	name := out
	if name == "-" {
		name = "" // standard output: Convert names the text itself
	}
	data, err := config.Convert(p, format, name)
	var cerr *config.ConversionError
	if errors.As(err, &cerr) && cerr.Hash == "" {
		pr := config.NewDiagPrinter(g.color(g.streams.Err))
		pr.AddSource(cerr.Name, cerr.Text)
		if err := pr.Print(g.streams.Err, cerr.Diags); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, fmt.Errorf("convert: %w; nothing was written", err)
	}
	return data, nil
}
