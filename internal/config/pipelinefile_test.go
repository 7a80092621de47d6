package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates files (name -> content) under a new temporary folder.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindPipelineFileIgnoresFilesThatAreNotPipelines(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"pipeline.yml":  "# a flow\napiVersion: flowctl/v1\nkind: \"Pipeline\"\n",
		"vars.hcl":      "network = \"pubnet\"\n",
		"compose.yaml":  "services: {}\n",
		"notes.txt":     "pipeline \"x\" {}\n",
		"nested/p.hcl":  "pipeline \"n\" {}\n",
		"other.yaml":    "kind: PipelineRun\n",
		"commented.hcl": "# pipeline \"x\" {}\n",
	})
	got, err := FindPipelineFile(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != filepath.Join(dir, "pipeline.yml") {
		t.Errorf("got %s", got)
	}
}

func TestFindPipelineFileExplainsAnEmptyFolder(t *testing.T) {
	_, err := FindPipelineFile(t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "no pipeline file in") {
		t.Errorf("err = %v", err)
	}
}

func TestFindPipelineFileTakesTheArgumentAsIs(t *testing.T) {
	dir := writeTree(t, map[string]string{"x.conf": "anything"})
	path := filepath.Join(dir, "x.conf")
	got, err := FindPipelineFile(".", []string{path})
	if err != nil || got != path {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := FindPipelineFile(".", []string{filepath.Join(dir, "missing.hcl")}); err == nil {
		t.Error("want an error for a missing file")
	}
}

func TestFindPipelineFileLooksInsideAFolderArgument(t *testing.T) {
	dir := writeTree(t, map[string]string{"sub/p.hcl": "pipeline \"p\" {}\n"})
	got, err := FindPipelineFile(".", []string{filepath.Join(dir, "sub")})
	if err != nil || got != filepath.Join(dir, "sub", "p.hcl") {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestFindPipelineFileNamesEveryCandidateWhenThereAreSeveral(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"b.yaml": "apiVersion: flowctl/v1\nkind: Pipeline\n",
		"a.hcl":  "pipeline \"a\" {}\n",
	})
	_, err := FindPipelineFile(dir, nil)
	want := "several pipeline files in " + dir + ": " + filepath.Join(dir, "a.hcl") + ", " + filepath.Join(dir, "b.yaml") + "; name one as an argument"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestFindPipelineFileCallsTheWorkingFolderTheCurrentFolder(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := FindPipelineFile(".", nil)
	want := "no pipeline file in the current folder: looked for *.hcl, *.yaml and *.yml files holding a pipeline; name one as an argument"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
