package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/flowctl/flowctl/internal/config"
)

// Patterns that tell a pipeline file from other HCL or YAML in a folder
// (variable files, CI configuration). They look at text, not syntax, so a
// pipeline with a syntax error is still found and its errors reported.
var (
	hclPipelineBlock = regexp.MustCompile(`(?m)^\s*pipeline\s+"`)
	yamlPipelineKind = regexp.MustCompile(`(?m)^kind:\s*["']?Pipeline["']?\s*(#.*)?$`)
)

// resolvePipelineFile returns the pipeline file a command works on: the
// argument when given (a folder means the pipeline inside it), else the
// single pipeline file in dir.
func resolvePipelineFile(dir string, args []string) (string, error) {
	if len(args) > 0 && args[0] != "" {
		info, err := os.Stat(args[0])
		if err != nil {
			return "", fmt.Errorf("pipeline file: %w", err)
		}
		if !info.IsDir() {
			return args[0], nil
		}
		dir = args[0]
	}
	candidates, err := pipelineFiles(dir)
	if err != nil {
		return "", err
	}
	switch len(candidates) {
	case 1:
		return candidates[0], nil
	case 0:
		return "", fmt.Errorf("no pipeline file in %s: looked for *.hcl, *.yaml and *.yml files holding a pipeline; name one as an argument", displayDir(dir))
	default:
		return "", fmt.Errorf("several pipeline files in %s: %s; name one as an argument", displayDir(dir), strings.Join(candidates, ", "))
	}
}

// pipelineFiles lists the files in dir that hold a pipeline, sorted.
func pipelineFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("look for a pipeline file: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		ok, err := isPipelineFile(path)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out, nil
}

func isPipelineFile(path string) (bool, error) {
	var pattern *regexp.Regexp
	switch strings.ToLower(filepath.Ext(path)) {
	case ".hcl":
		pattern = hclPipelineBlock
	case ".yaml", ".yml":
		pattern = yamlPipelineKind
	default:
		return false, nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("look for a pipeline file: %w", err)
	}
	return pattern.Match(src), nil
}

func displayDir(dir string) string {
	if dir == "." || dir == "" {
		return "the current folder"
	}
	return dir
}

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
		if err := newDiagPrinter(g.color(g.streams.Err)).print(g.streams.Err, diags); err != nil {
			return nil, err
		}
	}
	if diags.HasErrors() || p == nil {
		errs, warns := countDiagnostics(diags)
		fmt.Fprintf(g.streams.Err, "%s is not valid: %s\n", path, summaryLine(errs, warns))
		return nil, errSilent
	}
	return p, nil
}
