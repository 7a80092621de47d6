package config

import (
	"regexp"

	"github.com/hashicorp/hcl/v2"
)

// Backend is the pipeline's backend block: where its state is kept. No
// block is the default, a bbolt file beside the pipeline file.
//
//	pipeline "ttp" {
//	  backend "pg" {
//	    conn_str    = var.pg_conn_str  # or PG_CONN_STR
//	    schema_name = "flowctl"
//	    workspace   = "ttp-prod"       # default: the pipeline's name
//	  }
//	}
//
// In YAML the same map is spec.backend, with type: pg. The environment
// fills what the block leaves out (FLOWCTL_BACKEND_*, PG_CONN_STR; see
// docs/state-backends.md).
type Backend struct {
	// Type is BackendPG or BackendFile.
	Type       string `json:"type"`
	SchemaName string `json:"schema_name,omitempty"`
	Workspace  string `json:"workspace,omitempty"`
	// ConnStr holds the database password: it is never part of the
	// canonical JSON (so never in a plan, in state or in a hash), never
	// printed, and the writers leave it out.
	ConnStr string `json:"-"`
}

// The backend types.
const (
	BackendFile = "file"
	BackendPG   = "pg"
)

var (
	backendSchema = &hcl.BodySchema{Attributes: attrSchemas("conn_str", "schema_name", "workspace")}
	ylBackendKeys = []string{"type", "conn_str", "schema_name", "workspace"}
	// pgName is a schema or workspace name flowctl accepts: it is quoted
	// in SQL, but a plain name is one an operator can type.
	pgName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)
)

// decodeBackend reads the backend block of the pipeline block.
func (l *hclLoader) decodeBackend(o *hclOwner, p *Pipeline, b *hcl.Block) {
	o.ranges["backend"] = b.DefRange
	content, diags := b.Body.Content(backendSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	be := &Backend{Type: b.Labels[0]}
	l.getString(o, attrs, "schema_name", "backend.schema_name", &be.SchemaName)
	l.getString(o, attrs, "workspace", "backend.workspace", &be.Workspace)
	l.getSecretString(o, attrs, "conn_str", secretAttr{path: "backend.conn_str", summary: "Connection string in the file", env: "PG_CONN_STR"}, &be.ConnStr)
	p.Backend = be
}

// backend reads spec.backend.
func (l *yamlLoader) backend(p *Pipeline, e ylEntry) {
	m := l.mapping(e.v, "", "spec.backend", "a map")
	p.Ranges["backend"] = l.rng(l.deref(e.v))
	if m == nil {
		return
	}
	es := l.fields(m, "", "spec.backend", ylBackendKeys)
	be := &Backend{}
	for _, f := range []struct {
		key string
		dst *string
	}{{"type", &be.Type}, {"schema_name", &be.SchemaName}, {"workspace", &be.Workspace}} {
		if e, ok := es[f.key]; ok {
			*f.dst, _ = l.str(e.v, "", "spec.backend."+f.key)
			p.Ranges["backend."+f.key] = l.rng(l.deref(e.v))
		}
	}
	l.secretString(p, es, "conn_str", secretAttr{path: "backend.conn_str", summary: "Connection string in the file", env: "PG_CONN_STR"}, &be.ConnStr)
	p.Backend = be
}

// validateBackend checks the backend block.
func validateBackend(p *Pipeline) hcl.Diagnostics {
	be := p.Backend
	if be == nil {
		return nil
	}
	rng := func(attr string) hcl.Range {
		if r, ok := p.Ranges["backend."+attr]; ok {
			return r
		}
		return p.Ranges["backend"]
	}
	var diags hcl.Diagnostics
	switch be.Type {
	case BackendPG:
	case BackendFile:
		for attr, v := range map[string]string{"conn_str": be.ConnStr, "schema_name": be.SchemaName, "workspace": be.Workspace} {
			if v != "" {
				diags = append(diags, errorf(rng(attr), "Unsupported backend attribute",
					"pipeline %s: backend \"file\" takes no %s (it is the pg backend's)", p.Name, attr))
			}
		}
	default:
		diags = append(diags, errorf(rng("type"), "Unknown backend",
			"pipeline %s: backend %q is not one flowctl knows: \"file\" (the default) or \"pg\"", p.Name, be.Type))
	}
	for attr, v := range map[string]string{"schema_name": be.SchemaName, "workspace": be.Workspace} {
		if v != "" && !pgName.MatchString(v) {
			diags = append(diags, errorf(rng(attr), "Invalid backend "+attr,
				"pipeline %s: backend.%s %q must start with a letter or '_' and hold letters, digits, '_', '.', '-' (at most 63)", p.Name, attr, v))
		}
	}
	return diags
}
