package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
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
	files, err := hclFilesIn(args, opts.recursive)
	if err != nil {
		return err
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

// hclFilesIn expands the arguments into .hcl files: files as named, folders
// by their .hcl files (hidden folders skipped when recursing).
func hclFilesIn(args []string, recursive bool) ([]string, error) {
	var out []string
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("fmt: %w", err)
		}
		if !info.IsDir() {
			if !isHCLName(arg) {
				return nil, fmt.Errorf("fmt: %s is not an .hcl file", arg)
			}
			out = append(out, arg)
			continue
		}
		err = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != arg && (!recursive || strings.HasPrefix(d.Name(), ".")) {
					return filepath.SkipDir
				}
				return nil
			}
			if isHCLName(path) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("fmt: %w", err)
		}
	}
	return out, nil
}

func isHCLName(path string) bool { return strings.EqualFold(filepath.Ext(path), ".hcl") }

// formatHCL returns src in canonical layout, or the syntax errors that stop
// it from being formatted safely.
func formatHCL(src []byte, name string) ([]byte, hcl.Diagnostics) {
	if _, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// fmtFile formats one file and reports whether it changed (or, with
// -check, would change).
func fmtFile(g *globals, path string, opts fmtOptions) (bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("fmt: %w", err)
	}
	out, diags := formatHCL(src, path)
	if diags.HasErrors() {
		p := newDiagPrinter(g.color(g.streams.Err))
		p.addSource(path, src)
		if err := p.print(g.streams.Err, diags); err != nil {
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
	return true, writeFileAtomic(path, out, 0o644)
}

func fmtStdin(g *globals, opts fmtOptions) error {
	src, err := io.ReadAll(g.streams.In)
	if err != nil {
		return fmt.Errorf("fmt: read standard input: %w", err)
	}
	out, diags := formatHCL(src, "<stdin>")
	if diags.HasErrors() {
		p := newDiagPrinter(g.color(g.streams.Err))
		p.addSource("<stdin>", src)
		if err := p.print(g.streams.Err, diags); err != nil {
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

// writeFileAtomic replaces path with data through a temporary file in the
// same folder and a rename, keeping the mode of the file it replaces (or
// using mode for a new one): a reader never sees a half-written file, and a
// failure leaves the old one in place.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = fillFile(tmp, data, mode)
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fillFile writes data, sets mode, syncs and closes f.
func fillFile(f *os.File, data []byte, mode fs.FileMode) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
