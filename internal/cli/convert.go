package cli

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

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
	cmd.Flags().StringVarP(&out, "out", "o", "", "write to this file instead of standard output")
	addVarFlags(cmd.Flags(), &vars)
	return cmd
}

func runConvert(g *globals, args []string, to, out string, vars []config.VarArg) error {
	path, err := resolvePipelineFile(".", args)
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
	data := writePipeline(p, to)
	if err := verifyConversion(g, p, data, to, out); err != nil {
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
	if err := writeFileAtomic(out, data, mode); err != nil {
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

func writePipeline(p *config.Pipeline, format string) []byte {
	if format == config.FormatHCL {
		return config.WriteHCL(p)
	}
	return config.WriteYAML(p)
}

// verifyConversion loads the converted text back and fails, loudly, unless
// it is the same pipeline: a conversion that changed meaning must never be
// written.
func verifyConversion(g *globals, p *config.Pipeline, data []byte, format, out string) error {
	name := out
	if name == "" || name == "-" {
		name = "converted." + format
	}
	// No FLOWCTL_VAR_ environment: the output holds values, not variables.
	q, diags := config.LoadBytes(data, name, config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() || q == nil {
		pr := newDiagPrinter(g.color(g.streams.Err))
		pr.addSource(name, data)
		if err := pr.print(g.streams.Err, diags); err != nil {
			return err
		}
		return fmt.Errorf("convert: the %s output does not load back (a flowctl bug; please report it); nothing was written", format)
	}
	want, got := p, q
	if format == config.FormatYAML {
		// YAML cannot mark a value sensitive; the caller warns about that.
		want, got = withoutSensitivity(p), withoutSensitivity(q)
	}
	if got.Hash() == want.Hash() {
		return nil
	}
	p, q = want, got
	return fmt.Errorf("convert: the %s output loads to a different pipeline (hash %s, not %s; differing: %s) — a flowctl bug, please report it; nothing was written",
		format, short(q.Hash()), short(p.Hash()), strings.Join(differingParts(p, q), ", "))
}

// withoutSensitivity is a copy of p whose env values are all marked not
// sensitive.
func withoutSensitivity(p *config.Pipeline) *config.Pipeline {
	cp := *p
	cp.Components = make([]*config.Component, len(p.Components))
	for i, c := range p.Components {
		cc := *c
		if c.Env != nil {
			cc.Env = make(map[string]config.EnvValue, len(c.Env))
			for k, v := range c.Env {
				v.Sensitive = false
				cc.Env[k] = v
			}
		}
		cp.Components[i] = &cc
	}
	return &cp
}

// differingParts names what differs between two pipelines: components by
// address, or "pipeline settings".
func differingParts(p, q *config.Pipeline) []string {
	var out []string
	pp, qq := *p, *q
	pp.Components, qq.Components = nil, nil
	if string(pp.CanonicalJSON()) != string(qq.CanonicalJSON()) {
		out = append(out, "pipeline settings")
	}
	seen := map[string]bool{}
	for _, c := range p.Components {
		seen[c.Address()] = true
		if d := q.Component(c.Address()); d == nil || d.SpecHash() != c.SpecHash() {
			out = append(out, c.Address())
		}
	}
	for _, d := range q.Components {
		if !seen[d.Address()] {
			out = append(out, d.Address())
		}
	}
	return out
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
