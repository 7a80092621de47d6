package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Convert writes p in format (FormatHCL or FormatYAML) and loads the text
// back to check that it is the same pipeline, by canonical hash: a
// conversion that changed meaning must never reach a file. name is the file
// name the text is loaded under, as diagnostics show it; "" stands for
// "converted.<format>". YAML cannot mark a value sensitive, so a YAML result
// is compared with sensitivity left out; the caller warns about that.
//
// The text is returned only when it passed; a failed check is a
// *ConversionError.
func Convert(p *Pipeline, format, name string) ([]byte, error) {
	var data []byte
	switch format {
	case FormatHCL:
		data = WriteHCL(p)
	case FormatYAML:
		data = WriteYAML(p)
	default:
		return nil, fmt.Errorf("convert to %q: the formats are %s and %s", format, FormatHCL, FormatYAML)
	}
	if name == "" {
		name = "converted." + format
	}
	if err := verifyConversion(p, data, format, name); err != nil {
		return nil, err
	}
	return data, nil
}

// ConversionError is a converted pipeline that did not load back to the one
// converted. The user's pipeline was valid, so it is always a flowctl bug.
type ConversionError struct {
	Format string // the format converted to
	// Name and Text are the converted file as it was loaded back, so that
	// Diags can be shown in context.
	Name string
	Text []byte
	// Diags say why the text does not load back; Hash is empty then.
	Diags hcl.Diagnostics
	// Hash is the canonical hash of the pipeline the text loads to, Want
	// that of the pipeline converted, and Differing names what differs
	// between them: component addresses, or "pipeline settings".
	Hash, Want string
	Differing  []string
}

func (e *ConversionError) Error() string {
	if e.Hash == "" {
		return fmt.Sprintf("the %s output does not load back (a flowctl bug; please report it)", e.Format)
	}
	return fmt.Sprintf("the %s output loads to a different pipeline (hash %s, not %s; differing: %s) — a flowctl bug, please report it",
		e.Format, shortHash(e.Hash), shortHash(e.Want), strings.Join(e.Differing, ", "))
}

// verifyConversion loads data, p written in format, back under name, and
// returns a *ConversionError unless it is the same pipeline.
func verifyConversion(p *Pipeline, data []byte, format, name string) error {
	// No FLOWCTL_VAR_ environment: the output holds values, not variables.
	q, diags := LoadBytes(data, name, LoadOptions{Environ: []string{}})
	if diags.HasErrors() || q == nil {
		return &ConversionError{Format: format, Name: name, Text: data, Diags: diags}
	}
	want, got := p, q
	if format == FormatYAML {
		want, got = withoutSensitivity(p), withoutSensitivity(q)
	}
	if got.Hash() == want.Hash() {
		return nil
	}
	return &ConversionError{Format: format, Name: name, Text: data,
		Hash: got.Hash(), Want: want.Hash(), Differing: differingParts(want, got)}
}

// withoutSensitivity is a copy of p whose env values are all marked not
// sensitive.
func withoutSensitivity(p *Pipeline) *Pipeline {
	cp := *p
	cp.Components = make([]*Component, len(p.Components))
	for i, c := range p.Components {
		cc := *c
		if c.Env != nil {
			cc.Env = make(map[string]EnvValue, len(c.Env))
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
func differingParts(p, q *Pipeline) []string {
	var out []string
	pp, qq := *p, *q
	pp.Components, qq.Components = nil, nil
	if string(pp.CanonicalJSON()) != string(qq.CanonicalJSON()) {
		out = append(out, "pipeline settings")
	}
	seen := map[string]bool{}
	for _, c := range p.Components {
		seen[c.Address()] = true
		if d := q.Component(c.Address()); d == nil || string(d.CanonicalJSON()) != string(c.CanonicalJSON()) {
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

func shortHash(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
