package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/flowctl/flowctl/internal/config"
)

// varFlag is -var and -var-file at once: both append to one list, so the
// order they were given in survives (later ones win, as in Terraform).
type varFlag struct {
	vars *[]config.VarArg
	file bool
}

func (f *varFlag) String() string { return "" }

func (f *varFlag) Type() string {
	if f.file {
		return "file"
	}
	return "name=value"
}

func (f *varFlag) Set(s string) error {
	if f.file {
		if s == "" {
			return fmt.Errorf("-var-file needs a file name")
		}
		*f.vars = append(*f.vars, config.VarArg{File: s})
		return nil
	}
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("-var %q: want NAME=VALUE", s)
	}
	*f.vars = append(*f.vars, config.VarArg{Name: strings.TrimSpace(name), Value: value})
	return nil
}

// addVarFlags registers -var and -var-file, both feeding vars.
func addVarFlags(fs *pflag.FlagSet, vars *[]config.VarArg) {
	fs.Var(&varFlag{vars: vars}, "var", "set an HCL variable (repeatable; later settings win)")
	fs.Var(&varFlag{vars: vars, file: true}, "var-file", "read HCL variables from a file (repeatable; later settings win)")
}

// loadValidPipeline loads the pipeline at path for a command that needs a
// valid one: warnings are printed to stderr and the load goes on; errors are
// printed there too and the command fails.
func loadValidPipeline(g *globals, path string, vars []config.VarArg) (*config.Pipeline, error) {
	p, diags := config.Load(path, config.LoadOptions{Vars: vars})
	if len(diags) > 0 {
		if err := config.NewDiagPrinter(g.color(g.streams.Err)).Print(g.streams.Err, diags); err != nil {
			return nil, err
		}
	}
	if diags.HasErrors() || p == nil {
		errs, warns := config.CountDiagnostics(diags)
		fmt.Fprintf(g.streams.Err, "%s is not valid: %s\n", path, config.SummaryLine(errs, warns))
		return nil, errSilent
	}
	return p, nil
}
