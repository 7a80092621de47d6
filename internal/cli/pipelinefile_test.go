package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/config"
)

func TestResolvePipelineFileIgnoresFilesThatAreNotPipelines(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"pipeline.yml":  "# a flow\napiVersion: flowctl/v1\nkind: \"Pipeline\"\n",
		"vars.hcl":      "network = \"pubnet\"\n",
		"compose.yaml":  "services: {}\n",
		"notes.txt":     "pipeline \"x\" {}\n",
		"nested/p.hcl":  "pipeline \"n\" {}\n",
		"other.yaml":    "kind: PipelineRun\n",
		"commented.hcl": "# pipeline \"x\" {}\n",
	})
	got, err := resolvePipelineFile(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(dir, "pipeline.yml") {
		t.Errorf("got %s", got)
	}
}

func TestResolvePipelineFileExplainsAnEmptyFolder(t *testing.T) {
	_, err := resolvePipelineFile(t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "no pipeline file in") {
		t.Errorf("err = %v", err)
	}
}

func TestResolvePipelineFileTakesTheArgumentAsIs(t *testing.T) {
	dir := writeFiles(t, map[string]string{"x.conf": "anything"})
	path := filepath.Join(dir, "x.conf")
	got, err := resolvePipelineFile(".", []string{path})
	if err != nil || got != path {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := resolvePipelineFile(".", []string{filepath.Join(dir, "missing.hcl")}); err == nil {
		t.Error("want an error for a missing file")
	}
}

func TestVarFlagsShareOneOrderedList(t *testing.T) {
	var vars []config.VarArg
	v, f := &varFlag{vars: &vars}, &varFlag{vars: &vars, file: true}
	for _, step := range []struct {
		flag *varFlag
		arg  string
	}{{v, "a=1"}, {f, "x.vars"}, {v, " b = two=2"}} {
		if err := step.flag.Set(step.arg); err != nil {
			t.Fatal(err)
		}
	}
	want := []config.VarArg{{Name: "a", Value: "1"}, {File: "x.vars"}, {Name: "b", Value: " two=2"}}
	if len(vars) != len(want) {
		t.Fatalf("got %+v", vars)
	}
	for i := range want {
		if vars[i] != want[i] {
			t.Errorf("vars[%d] = %+v, want %+v", i, vars[i], want[i])
		}
	}
}
