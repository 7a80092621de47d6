package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/flowctl/flowctl/internal/config"
)

// diagPrinter renders diagnostics with the source snippet they point at. It
// reads each file named by a diagnostic once, unless its source was given.
type diagPrinter struct {
	files map[string]*hcl.File
	color bool
}

func newDiagPrinter(color bool) *diagPrinter {
	return &diagPrinter{files: map[string]*hcl.File{}, color: color}
}

// addSource supplies the text of a file that is not on disk (or not yet).
func (p *diagPrinter) addSource(name string, src []byte) {
	p.files[name] = &hcl.File{Bytes: src}
}

// print writes every diagnostic, sorted, each followed by a blank line.
func (p *diagPrinter) print(w io.Writer, diags hcl.Diagnostics) error {
	sorted := append(hcl.Diagnostics(nil), diags...)
	config.SortDiagnostics(sorted)
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

func (p *diagPrinter) load(name string) {
	if _, ok := p.files[name]; ok || name == "" {
		return
	}
	src, err := os.ReadFile(name)
	if err != nil {
		// No snippet then; the diagnostic itself still prints.
		p.files[name] = nil
		return
	}
	p.addSource(name, src)
}

// countDiagnostics returns the numbers of errors and warnings.
func countDiagnostics(diags hcl.Diagnostics) (errs, warns int) {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

// summaryLine says "1 error, 2 warnings".
func summaryLine(errs, warns int) string {
	return plural(errs, "error") + ", " + plural(warns, "warning")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// jsonDiagnostic is one diagnostic in the shape Terraform's -json output uses.
type jsonDiagnostic struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail"`
	Range    *jsonRange `json:"range,omitempty"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

func toJSONDiagnostics(diags hcl.Diagnostics) []jsonDiagnostic {
	sorted := append(hcl.Diagnostics(nil), diags...)
	config.SortDiagnostics(sorted)
	out := make([]jsonDiagnostic, 0, len(sorted))
	for _, d := range sorted {
		jd := jsonDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if r := d.Subject; r != nil {
			jd.Range = &jsonRange{
				Filename: r.Filename,
				Start:    jsonPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
				End:      jsonPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
			}
		}
		out = append(out, jd)
	}
	return out
}

// errorDiagnostic turns a plain error into a diagnostic without a position.
func errorDiagnostic(summary string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error()}
}
