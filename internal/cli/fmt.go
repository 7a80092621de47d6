package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/config"
)

type fmtOptions struct {
	check, diff, recursive bool
}

func newFmtCommand(g *globals) *cobra.Command {
	var opts fmtOptions
	cmd := &cobra.Command{
		Use:   "fmt [FILE|DIR...]",
		Short: "Rewrite HCL pipeline files in the canonical layout",
		Long: "Fmt rewrites .hcl files in the canonical HCL layout and prints the names of the\n" +
			"files it changed. Without arguments it formats the current folder; '-' formats\n" +
			"standard input to standard output. A file with a syntax error is reported and\n" +
			"left untouched.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFmt(g, args, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.check, "check", false, "change nothing; exit 1 when any file is not formatted")
	cmd.Flags().BoolVar(&opts.diff, "diff", false, "print a unified diff of each change")
	cmd.Flags().BoolVar(&opts.recursive, "recursive", false, "also format files in sub-folders")
	return cmd
}

func runFmt(g *globals, args []string, opts fmtOptions) error {
	if len(args) == 0 {
		args = []string{"."}
	}
	if len(args) == 1 && args[0] == "-" {
		return fmtStdin(g, opts)
	}
	files, err := config.HCLFiles(args, opts.recursive)
	if err != nil {
		return fmt.Errorf("fmt: %w", err)
	}
	failed, changed := false, false
	for _, f := range files {
		c, err := fmtFile(g, f, opts)
		if err != nil {
			if !errors.Is(err, errSilent) {
				fmt.Fprintf(g.streams.Err, "Error: %v\n", err)
			}
			failed = true
			continue
		}
		changed = changed || c
	}
	if failed || (opts.check && changed) {
		return errSilent
	}
	return nil
}

// fmtFile formats one file and reports whether it changed (or, with
// -check, would change).
func fmtFile(g *globals, path string, opts fmtOptions) (bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("fmt: %w", err)
	}
	out, diags := config.ReformatHCL(src, path)
	if diags.HasErrors() {
		p := config.NewDiagPrinter(g.color(g.streams.Err))
		p.AddSource(path, src)
		if err := p.Print(g.streams.Err, diags); err != nil {
			return false, err
		}
		return false, errSilent
	}
	if bytes.Equal(src, out) {
		return false, nil
	}
	fmt.Fprintln(g.streams.Out, path)
	if opts.diff {
		if err := writeDiff(g.streams.Out, path, src, out); err != nil {
			return true, err
		}
	}
	if opts.check {
		return true, nil
	}
	return true, config.WriteFileAtomic(path, out, 0o644)
}

func fmtStdin(g *globals, opts fmtOptions) error {
	src, err := io.ReadAll(g.streams.In)
	if err != nil {
		return fmt.Errorf("fmt: read standard input: %w", err)
	}
	out, diags := config.ReformatHCL(src, "<stdin>")
	if diags.HasErrors() {
		p := config.NewDiagPrinter(g.color(g.streams.Err))
		p.AddSource("<stdin>", src)
		if err := p.Print(g.streams.Err, diags); err != nil {
			return err
		}
		return errSilent
	}
	changed := !bytes.Equal(src, out)
	switch {
	case opts.diff:
		if changed {
			if err := writeDiff(g.streams.Out, "<stdin>", src, out); err != nil {
				return err
			}
		}
	case !opts.check:
		if _, err := g.streams.Out.Write(out); err != nil {
			return err
		}
	}
	if opts.check && changed {
		return errSilent
	}
	return nil
}

func writeDiff(w io.Writer, name string, before, after []byte) error {
	diff := difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(before)),
		B:        difflib.SplitLines(string(after)),
		FromFile: "old/" + filepath.ToSlash(name),
		ToFile:   "new/" + filepath.ToSlash(name),
		Context:  3,
	}
	text, err := difflib.GetUnifiedDiffString(diff)
	if err != nil {
		return fmt.Errorf("diff %s: %w", name, err)
	}
	_, err = io.WriteString(w, text)
	return err
}
