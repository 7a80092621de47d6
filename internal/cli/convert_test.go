package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
)

func loadHash(t *testing.T, path string) string {
	t.Helper()
	p, diags := config.Load(path, config.LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("%s:\n%s", path, config.FormatDiagnostics(diags))
	}
	return p.Hash()
}

func TestConvertYAMLToHCLKeepsThePipeline(t *testing.T) {
	src := example("docker-ttp/pipeline.yaml")
	out := filepath.Join(t.TempDir(), "p.hcl")
	r := run(t, "convert", src, "--to", "hcl", "-o", out)
	r.wantCode(t, 0)
	if got, want := loadHash(t, out), loadHash(t, src); got != want {
		t.Errorf("hash %s, want %s", got, want)
	}
	if !strings.Contains(r.err, "Wrote "+out) {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestConvertPicksTheOtherFormatAndWritesToStdout(t *testing.T) {
	r := run(t, "convert", example("docker-ttp/pipeline.hcl"))
	r.wantCode(t, 0)
	if !strings.HasPrefix(r.out, "apiVersion: flowctl/v1\n") {
		t.Errorf("want YAML, got:\n%s", r.out)
	}
	out := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(out, []byte(r.out), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := loadHash(t, out), loadHash(t, example("docker-ttp/pipeline.hcl")); got != want {
		t.Errorf("hash %s, want %s", got, want)
	}
}

func TestConvertRefusesAnInvalidPipeline(t *testing.T) {
	r := run(t, "convert", "testdata/validate/invalid.hcl", "--to", "yaml")
	r.wantCode(t, 1)
	if r.out != "" || !strings.Contains(r.err, "Error: ") {
		t.Errorf("stdout: %q\nstderr: %s", r.out, r.err)
	}
}

func TestConvertRejectsAnUnknownFormat(t *testing.T) {
	r := run(t, "convert", example("docker-ttp/pipeline.hcl"), "--to", "json")
	r.wantCode(t, 1)
	if !strings.Contains(r.err, `--to "json"`) {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestConvertWarnsAboutSensitiveValues(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.hcl": `pipeline "s" {}
variable "token" {
  sensitive = true
  default   = "hunter2"
}
source "api" {
  command = ["./api"]
  env     = { API_TOKEN = var.token }
}
`})
	for _, to := range []string{"yaml", "hcl"} {
		out := filepath.Join(dir, "out."+to)
		r := run(t, "convert", filepath.Join(dir, "p.hcl"), "--to", to, "-o", out)
		r.wantCode(t, 0)
		if !strings.Contains(r.err, "Warning:") || !strings.Contains(r.err, "source.api: API_TOKEN") || strings.Contains(r.err, "hunter2") {
			t.Errorf("%s: stderr: %s", to, r.err)
		}
		info, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600 for a file holding secrets", to, info.Mode().Perm())
		}
	}
}
