package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateReportsSuccessForAValidPipeline(t *testing.T) {
	for _, f := range []string{"docker-ttp/pipeline.hcl", "docker-ttp/pipeline.yaml", "registry-style/pipeline.yaml"} {
		r := run(t, "validate", example(f))
		r.wantCode(t, 0)
		if r.out != "Success! The pipeline is valid.\n" {
			t.Errorf("%s: got %q", f, r.out)
		}
	}
}

func TestValidateShowsEachProblemWithItsSourceLine(t *testing.T) {
	r := run(t, "validate", "testdata/validate/invalid.hcl")
	r.wantCode(t, 1)
	assertGolden(t, "validate/invalid.hcl.txt", r.out)
}

func TestValidateJSONDescribesEveryDiagnostic(t *testing.T) {
	r := run(t, "validate", "-json", "testdata/validate/invalid.hcl")
	r.wantCode(t, 1)
	assertGolden(t, "validate/invalid.hcl.json", r.out)
	var report validateReport
	if err := json.Unmarshal([]byte(r.out), &report); err != nil {
		t.Fatal(err)
	}
	if report.Valid || report.ErrorCount == 0 || report.ErrorCount != len(report.Diagnostics) {
		t.Errorf("report: %+v", report)
	}
}

func TestValidatePrintsWarningsAndStillSucceeds(t *testing.T) {
	r := run(t, "validate", "testdata/validate/warnings.yaml")
	r.wantCode(t, 0)
	assertGolden(t, "validate/warnings.yaml.txt", r.out)

	j := run(t, "validate", "-json", "testdata/validate/warnings.yaml")
	j.wantCode(t, 0)
	assertGolden(t, "validate/warnings.yaml.json", j.out)
}

func TestValidateAppliesVarsInCommandLineOrder(t *testing.T) {
	file := "testdata/validate/network.hcl"
	bad := "testdata/validate/bad-network.vars"
	r := run(t, "validate", "-var-file", bad, "-var", "network=pubnet", file)
	r.wantCode(t, 0)

	r = run(t, "validate", "-var", "network=pubnet", "-var-file", bad, file)
	r.wantCode(t, 1)
	if !strings.Contains(r.out, "The network must be testnet or pubnet.") {
		t.Errorf("want the validation message, got:\n%s", r.out)
	}
}

func TestValidateRejectsAVarWithoutAValue(t *testing.T) {
	r := run(t, "validate", "-var", "network", "testdata/validate/network.hcl")
	r.wantCode(t, 1)
	if !strings.Contains(r.err, `want NAME=VALUE`) {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestValidateFindsThePipelineInTheCurrentFolder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"flow.hcl":      "pipeline \"here\" {}\nsource \"s\" { command = [\"./s\"] }\n",
		"dev.vars.hcl":  "network = \"testnet\"\n",
		".ci/notes.yml": "kind: Pipeline\n",
	})
	t.Chdir(dir)
	r := run(t, "validate")
	r.wantCode(t, 0)
}

func TestValidateWithoutFileListsEveryCandidate(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.hcl":  "pipeline \"a\" {}\n",
		"b.yaml": "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: b}\n",
	})
	t.Chdir(dir)
	r := run(t, "validate")
	r.wantCode(t, 1)
	if !strings.Contains(r.err, "several pipeline files in the current folder: a.hcl, b.yaml") {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestValidateJSONReportsAMissingPipelineFile(t *testing.T) {
	t.Chdir(t.TempDir())
	r := run(t, "validate", "-json")
	r.wantCode(t, 1)
	var report validateReport
	if err := json.Unmarshal([]byte(r.out), &report); err != nil {
		t.Fatalf("%v: %s", err, r.out)
	}
	if report.Valid || report.ErrorCount != 1 || !strings.Contains(report.Diagnostics[0].Detail, "no pipeline file") {
		t.Errorf("report: %+v", report)
	}
}

func TestValidateAcceptsAFolder(t *testing.T) {
	r := run(t, "validate", filepath.Join("..", "..", "examples", "registry-style"))
	r.wantCode(t, 0)
}
