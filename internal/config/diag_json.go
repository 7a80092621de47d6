package config

import "github.com/hashicorp/hcl/v2"

// JSONDiagnostic is one diagnostic in the shape Terraform's -json output uses.
type JSONDiagnostic struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail"`
	Range    *JSONRange `json:"range,omitempty"`
}

// JSONRange is where a diagnostic points.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONPos is one end of a JSONRange.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONDiagnostics converts diags, sorted by position, for -json output.
func JSONDiagnostics(diags hcl.Diagnostics) []JSONDiagnostic {
	sorted := append(hcl.Diagnostics(nil), diags...)
	SortDiagnostics(sorted)
	out := make([]JSONDiagnostic, 0, len(sorted))
	for _, d := range sorted {
		jd := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if r := d.Subject; r != nil {
			jd.Range = &JSONRange{
				Filename: r.Filename,
				Start:    JSONPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
				End:      JSONPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
			}
		}
		out = append(out, jd)
	}
	return out
}
