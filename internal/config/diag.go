package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// errorf is an error diagnostic at rng.
func errorf(rng hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	r := rng
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &r}
}

// warnf is a warning diagnostic at rng.
func warnf(rng hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	r := rng
	return &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: &r}
}

// compErr is an error about component c, at the range of its attribute attr;
// the detail starts with the component's address.
func compErr(c *Component, attr, summary, format string, args ...any) *hcl.Diagnostic {
	return errorf(c.Range(attr), summary, c.Address()+": "+format, args...)
}

// SortDiagnostics orders diagnostics by file, line and column, errors before
// warnings at the same place, so output is stable.
func SortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i], diags[j]
		ra, rb := subject(a), subject(b)
		if ra.Filename != rb.Filename {
			return ra.Filename < rb.Filename
		}
		if ra.Start.Line != rb.Start.Line {
			return ra.Start.Line < rb.Start.Line
		}
		if ra.Start.Column != rb.Start.Column {
			return ra.Start.Column < rb.Start.Column
		}
		return a.Severity < b.Severity
	})
}

func subject(d *hcl.Diagnostic) hcl.Range {
	if d.Subject != nil {
		return *d.Subject
	}
	return hcl.Range{}
}

// FormatDiagnostic renders one diagnostic on one line:
// "file:line:col: error: Summary: detail".
func FormatDiagnostic(d *hcl.Diagnostic) string {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	var b strings.Builder
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	b.WriteString(sev + ": " + d.Summary)
	if d.Detail != "" {
		b.WriteString(": " + strings.ReplaceAll(d.Detail, "\n", " "))
	}
	return b.String()
}

// FormatDiagnostics renders diagnostics one per line, sorted.
func FormatDiagnostics(diags hcl.Diagnostics) string {
	sorted := append(hcl.Diagnostics(nil), diags...)
	SortDiagnostics(sorted)
	var b strings.Builder
	for _, d := range sorted {
		b.WriteString(FormatDiagnostic(d))
		b.WriteByte('\n')
	}
	return b.String()
}
