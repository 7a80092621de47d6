package config

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// DiagPrinter renders diagnostics with the source snippet they point at. It
// reads each file named by a diagnostic once, unless its source was given.
type DiagPrinter struct {
	files map[string]*hcl.File
	color bool
}

// NewDiagPrinter returns a printer; color adds terminal colours.
func NewDiagPrinter(color bool) *DiagPrinter {
	return &DiagPrinter{files: map[string]*hcl.File{}, color: color}
}

// AddSource supplies the text of a file that is not on disk (or not yet).
func (p *DiagPrinter) AddSource(name string, src []byte) {
	p.files[name] = &hcl.File{Bytes: src}
}

// Print writes every diagnostic, sorted, each followed by a blank line.
func (p *DiagPrinter) Print(w io.Writer, diags hcl.Diagnostics) error {
	sorted := append(hcl.Diagnostics(nil), diags...)
	SortDiagnostics(sorted)
	for _, d := range sorted {
		if d.Subject != nil {
			p.load(d.Subject.Filename)
		}
	}
	var buf strings.Builder
	tw := hcl.NewDiagnosticTextWriter(&buf, p.files, 0, p.color)
	for _, d := range sorted {
		buf.Reset()
		if err := tw.WriteDiagnostic(d); err != nil {
			return fmt.Errorf("print diagnostics: %w", err)
		}
		if _, err := io.WriteString(w, withColumn(buf.String(), d.Subject)); err != nil {
			return fmt.Errorf("print diagnostics: %w", err)
		}
	}
	return nil
}

// withColumn turns the position line hcl writes ("  on FILE line N") into
// "  on FILE:N:C", the form editors and terminals jump to.
func withColumn(text string, r *hcl.Range) string {
	if r == nil {
		return text
	}
	old := fmt.Sprintf("  on %s line %d", r.Filename, r.Start.Line)
	return strings.Replace(text, old, fmt.Sprintf("  on %s:%d:%d", r.Filename, r.Start.Line, r.Start.Column), 1)
}

func (p *DiagPrinter) load(name string) {
	if _, ok := p.files[name]; ok || name == "" {
		return
	}
	src, err := os.ReadFile(name)
	if err != nil {
		// No snippet then; the diagnostic itself still prints.
		p.files[name] = nil
		return
	}
	p.AddSource(name, src)
}

// CountDiagnostics returns the numbers of errors and warnings.
func CountDiagnostics(diags hcl.Diagnostics) (errs, warns int) {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

// SummaryLine says "1 error, 2 warnings".
func SummaryLine(errs, warns int) string {
	return plural(errs, "error") + ", " + plural(warns, "warning")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// ErrorDiagnostic turns a plain error into a diagnostic without a position.
func ErrorDiagnostic(summary string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error()}
}
