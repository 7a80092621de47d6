package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pmezard/go-difflib/difflib"
)

// ErrReported is returned once the reason of a failure has been written
// to the error stream (as diagnostics): the caller need not print it again.
var ErrReported = errors.New("reported")

// Formatter rewrites HCL files in the canonical layout, as `flowctl fmt`
// does: it prints the name of each file it changes to Out (with Diff, a
// unified diff too), and a file's syntax errors to Err.
type Formatter struct {
	Out, Err io.Writer
	Color    bool // colour diagnostics
	Check    bool // change nothing; report what would change
	Diff     bool // print a unified diff of each change
}

// Files formats each file; it reports whether any changed (or would) and
// fails with ErrReported when a file could not be formatted (each such
// file is reported and left untouched; the others are still formatted).
func (f *Formatter) Files(paths []string) (changed bool, err error) {
	failed := false
	for _, path := range paths {
		c, err := f.file(path)
		if err != nil {
			if !errors.Is(err, ErrReported) {
				fmt.Fprintf(f.Err, "Error: %v\n", err)
			}
			failed = true
			continue
		}
		changed = changed || c
	}
	if failed {
		return changed, ErrReported
	}
	return changed, nil
}

func (f *Formatter) file(path string) (bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("fmt: %w", err)
	}
	out, err := f.reformat(src, path)
	if err != nil || bytes.Equal(src, out) {
		return false, err
	}
	fmt.Fprintln(f.Out, path)
	if f.Diff {
		if err := writeDiff(f.Out, path, src, out); err != nil {
			return true, err
		}
	}
	if f.Check {
		return true, nil
	}
	return true, WriteFileAtomic(path, out, 0o644)
}

// Stream formats in to Out (with Diff, only the diff; with Check, nothing)
// and reports whether the text changed.
func (f *Formatter) Stream(in io.Reader) (bool, error) {
	src, err := io.ReadAll(in)
	if err != nil {
		return false, fmt.Errorf("fmt: read standard input: %w", err)
	}
	const name = "<stdin>"
	out, err := f.reformat(src, name)
	if err != nil {
		return false, err
	}
	changed := !bytes.Equal(src, out)
	switch {
	case f.Diff:
		if changed {
			err = writeDiff(f.Out, name, src, out)
		}
	case !f.Check:
		_, err = f.Out.Write(out)
	}
	return changed, err
}

// reformat is ReformatHCL that prints syntax errors with their snippet.
func (f *Formatter) reformat(src []byte, name string) ([]byte, error) {
	out, diags := ReformatHCL(src, name)
	if !diags.HasErrors() {
		return out, nil
	}
	p := NewDiagPrinter(f.Color)
	p.AddSource(name, src)
	if err := p.Print(f.Err, diags); err != nil {
		return nil, err
	}
	return nil, ErrReported
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
