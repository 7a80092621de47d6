package config

import (
	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v3"
)

// secretAttr is a string attribute of a block that holds a secret (a
// Nomad token, a database connection string): its value is never shown in
// a diagnostic, and writing it in the file itself is warned about.
type secretAttr struct {
	path    string // block.attribute, e.g. "nomad.token"
	summary string // the warning's summary, e.g. "Nomad token in the file"
	env     string // the variable to set instead, e.g. "NOMAD_TOKEN"
}

// getSecretString reads the HCL attribute s into dst; a value that does
// not come from a sensitive variable is warned about.
func (l *hclLoader) getSecretString(o *hclOwner, attrs hcl.Attributes, name string, s secretAttr, dst *string) {
	v, a, sens, ok := l.get(o, attrs, name, s.path)
	if !ok {
		return
	}
	// Never l.typeErr: it would show the value.
	if str, isString := ctyString(v); isString {
		*dst = str
	} else {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Incorrect attribute value type",
			"%s: %s must be a string", o.label, s.path))
	}
	if !sens && *dst != "" {
		l.diags = append(l.diags, warnf(a.Expr.Range(), s.summary,
			"%s: %s is written in the file; take it from a sensitive variable or leave it out and set %s", o.label, s.path, s.env))
	}
}

// secretString reads the YAML field s (spec.<s.path>) of es into dst; a
// value written in the file is warned about.
func (l *yamlLoader) secretString(p *Pipeline, es map[string]ylEntry, name string, s secretAttr, dst *string) {
	e, ok := es[name]
	if !ok {
		return
	}
	v := l.deref(e.v)
	p.Ranges[s.path] = l.rng(v)
	switch {
	case ylIsNull(v):
	case v.Kind == yaml.ScalarNode:
		*dst = v.Value
		if *dst != "" {
			l.diags = append(l.diags, warnf(l.rng(v), s.summary,
				"spec.%s is written in the file; leave it out and set %s", s.path, s.env))
		}
	default:
		// Never l.wrongType: it would describe the value.
		l.diags = append(l.diags, errorf(l.rng(v), "Wrong type", "spec.%s must be a string", s.path))
	}
}
