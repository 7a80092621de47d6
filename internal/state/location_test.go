package state

import (
	"strings"
	"testing"
)

func TestLocateTakesTheBlockOverTheEnvironment(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name  string
		block *BackendSettings
		env   map[string]string
		want  string // backend, conn, schema, workspace; or "error: …"
	}{
		{"no block, no environment", nil, nil, "file"},
		{"FLOWCTL_BACKEND=file", nil, map[string]string{EnvBackend: "file", EnvPGConnStr: "postgres://x"}, "file"},
		{"PG_CONN_STR alone does not choose pg", nil, map[string]string{EnvPGConnStr: "postgres://x"}, "file"},
		{"pg from the environment", nil, map[string]string{EnvBackend: "pg", EnvPGConnStr: "postgres://pg", EnvBackendSchema: "s", EnvBackendWorkspace: "w"}, "pg postgres://pg s w"},
		{"FLOWCTL_BACKEND_CONN_STR before PG_CONN_STR", nil, map[string]string{EnvBackend: "pg", EnvPGConnStr: "postgres://pg", EnvBackendConnStr: "postgres://flowctl"}, "pg postgres://flowctl  "},
		{"the block wins", &BackendSettings{Type: "pg", ConnStr: "postgres://block", Schema: "b"}, map[string]string{EnvBackend: "file", EnvPGConnStr: "postgres://pg", EnvBackendSchema: "s", EnvBackendWorkspace: "w"}, "pg postgres://block b w"},
		{"a file block wins over FLOWCTL_BACKEND=pg", &BackendSettings{Type: "file"}, map[string]string{EnvBackend: "pg", EnvPGConnStr: "postgres://pg"}, "file"},
		{"pg without a connection string", &BackendSettings{Type: "pg"}, nil, "error: the pg state backend has no connection string"},
		{"an unknown backend", nil, map[string]string{EnvBackend: "s3"}, `error: state backend "s3"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc, err := Locate("p.state.db", tc.block, env(tc.env))
			var got string
			switch {
			case err != nil:
				got = "error: " + err.Error()
			case loc.PG == nil:
				got = loc.Backend()
			default:
				got = strings.Join([]string{loc.Backend(), loc.PG.ConnStr, loc.PG.Schema, loc.PG.Workspace}, " ")
			}
			if !strings.HasPrefix(got, tc.want) || (err == nil && got != tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if err == nil && loc.Path != "p.state.db" {
				t.Fatalf("path = %q", loc.Path)
			}
			// A child given loc.Env() finds the same location.
			if err == nil {
				child := map[string]string{}
				for _, kv := range loc.Env() {
					k, v, _ := strings.Cut(kv, "=")
					child[k] = v
				}
				again, err := Locate("p.state.db", nil, env(child))
				if err != nil || again.Backend() != loc.Backend() || (loc.PG != nil && *again.PG != *loc.PG) {
					t.Fatalf("from Env(): %+v, %v; want %+v", again, err, loc)
				}
			}
		})
	}
}
