package config

import (
	"strings"
	"testing"
)

const backendHCL = `
variable "pg" {
  sensitive = true
  default   = "postgres://flowctl:pg-s3cr3t@db.example.com/flowctl"
}

pipeline "ttp" {
  backend "pg" {
    conn_str    = var.pg
    schema_name = "ci_state"
    workspace   = "ttp-prod"
  }
}

source "ledger" {
  command = ["./ledger"]
}
`

const backendYAML = `apiVersion: flowctl/v1
kind: Pipeline
metadata:
  name: ttp
spec:
  backend:
    type: pg
    schema_name: ci_state
    workspace: ttp-prod
  sources:
    - id: ledger
      command: [./ledger]
`

func TestBackendBlockLoadsTheSameFromHCLAndYAMLWithoutItsConnectionString(t *testing.T) {
	h := mustLoadHCL(t, backendHCL, LoadOptions{})
	y := ylMustLoad(t, backendYAML)
	if h.Backend == nil || h.Backend.ConnStr != "postgres://flowctl:pg-s3cr3t@db.example.com/flowctl" {
		t.Fatalf("hcl: backend = %+v", h.Backend)
	}
	want := Backend{Type: BackendPG, SchemaName: "ci_state", Workspace: "ttp-prod"}
	if got := *h.Backend; got.Type != want.Type || got.SchemaName != want.SchemaName || got.Workspace != want.Workspace {
		t.Errorf("hcl: backend = %+v", got)
	}
	if y.Backend == nil || *y.Backend != want {
		t.Errorf("yaml: backend = %+v, want %+v", y.Backend, want)
	}
	if string(h.CanonicalJSON()) != string(y.CanonicalJSON()) {
		t.Errorf("canonical JSON differs:\nhcl:  %s\nyaml: %s", h.CanonicalJSON(), y.CanonicalJSON())
	}
	for what, b := range map[string][]byte{"canonical JSON": h.CanonicalJSON(), "HCL written": WriteHCL(h), "YAML written": WriteYAML(h)} {
		if strings.Contains(string(b), "pg-s3cr3t") {
			t.Errorf("%s holds the password:\n%s", what, b)
		}
		if !strings.Contains(string(b), "ttp-prod") {
			t.Errorf("%s lacks the backend:\n%s", what, b)
		}
	}
}

func TestBackendBlockProblemsAreReportedAtTheirValue(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{`backend "s3" {}`, `test.hcl:3:3: error: Unknown backend`},
		{`backend "file" { workspace = "x" }`, `test.hcl:3:32: error: Unsupported backend attribute`},
		{`backend "pg" { schema_name = "a b" }`, `test.hcl:3:32: error: Invalid backend schema_name`},
		{`backend "pg" { conn_str = "postgres://u:plain-pw@h/db" }`, `test.hcl:3:29: warning: Connection string in the file`},
	} {
		src := "pipeline \"p\" {\n  executor = \"process\"\n  " + tc.block + "\n}\nsource \"a\" {\n  command = [\"x\"]\n}\n"
		_, diags := loadHCLString(t, src, LoadOptions{})
		text := FormatDiagnostics(diags)
		if !strings.Contains(text, tc.want) {
			t.Errorf("%s: want %q in:\n%s", tc.block, tc.want, text)
		}
		if strings.Contains(text, "plain-pw") {
			t.Errorf("%s: the diagnostic shows the password:\n%s", tc.block, text)
		}
	}
}
