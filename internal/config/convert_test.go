package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func loadExample(t *testing.T, name string) *Pipeline {
	t.Helper()
	p, diags := Load(filepath.Join("..", "..", "examples", name), LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("%s:\n%s", name, FormatDiagnostics(diags))
	}
	return p
}

func TestConvertWritesTextThatLoadsBackToTheSamePipeline(t *testing.T) {
	for _, tc := range []struct{ file, to string }{
		{"docker-ttp/pipeline.hcl", FormatYAML},
		{"docker-ttp/pipeline.yaml", FormatHCL},
	} {
		p := loadExample(t, tc.file)
		data, err := Convert(p, tc.to, "")
		if err != nil {
			t.Fatalf("%s to %s: %v", tc.file, tc.to, err)
		}
		if got := reload(t, data, tc.to); got.Hash() != p.Hash() {
			t.Errorf("%s to %s: hash %s, want %s", tc.file, tc.to, got.Hash(), p.Hash())
		}
	}
}

func TestConvertToYAMLLeavesSensitivityOutOfTheCheck(t *testing.T) {
	src := `pipeline "s" {}
variable "token" {
  sensitive = true
  default   = "hunter2"
}
source "api" {
  command = ["./api"]
  env     = { API_TOKEN = var.token }
}
`
	p, diags := LoadBytes([]byte(src), "p.hcl", LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if _, err := Convert(p, FormatYAML, ""); err != nil {
		t.Errorf("to yaml: %v", err)
	}
	data, err := Convert(p, FormatHCL, "")
	if err != nil {
		t.Fatalf("to hcl: %v", err)
	}
	if !reload(t, data, FormatHCL).Component("source.api").Env["API_TOKEN"].Sensitive {
		t.Error("HCL output lost the value's sensitivity")
	}
}

func TestConvertRefusesAnUnknownFormat(t *testing.T) {
	p := loadExample(t, "docker-ttp/pipeline.hcl")
	data, err := Convert(p, "json", "")
	if err == nil || data != nil {
		t.Fatalf("got %d bytes, %v", len(data), err)
	}
	var cerr *ConversionError
	if errors.As(err, &cerr) {
		t.Errorf("an unknown format is not a conversion bug: %v", err)
	}
}

func TestConversionCheckNamesWhatDiffers(t *testing.T) {
	p := loadExample(t, "docker-ttp/pipeline.hcl")
	q := loadExample(t, "docker-ttp/pipeline.hcl")
	q.Components[0].Replicas = 2
	err := verifyConversion(p, WriteYAML(q), FormatYAML, "converted.yaml")
	var cerr *ConversionError
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want a *ConversionError", err)
	}
	want := "the yaml output loads to a different pipeline (hash " + shortHash(withoutSensitivity(q).Hash()) +
		", not " + shortHash(withoutSensitivity(p).Hash()) + "; differing: source.stellar-live-source) — a flowctl bug, please report it"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}

func TestConversionCheckReportsTextThatDoesNotLoad(t *testing.T) {
	p := loadExample(t, "docker-ttp/pipeline.hcl")
	text := []byte("pipeline \"p\" {\n")
	err := verifyConversion(p, text, FormatHCL, "out.hcl")
	var cerr *ConversionError
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want a *ConversionError", err)
	}
	if cerr.Hash != "" || !cerr.Diags.HasErrors() || cerr.Name != "out.hcl" || string(cerr.Text) != string(text) {
		t.Errorf("got %+v", cerr)
	}
	if want := "the hcl output does not load back (a flowctl bug; please report it)"; err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}

func TestDifferingPartsNamesSettingsAndComponents(t *testing.T) {
	p := loadExample(t, "docker-ttp/pipeline.hcl")
	q := loadExample(t, "docker-ttp/pipeline.hcl")
	q.Components[0].Replicas = 2
	q.Description = "changed"
	got := strings.Join(differingParts(p, q), ", ")
	if got != "pipeline settings, source.stellar-live-source" {
		t.Errorf("got %q", got)
	}
}
