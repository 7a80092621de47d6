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

// One pipeline in both formats (the examples' layout): both files share the
// folder's state, so the HCL one is taken, and the note says so.
func TestFindPipelineFileTakesTheHCLFormOfOnePipelineInBothFormats(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"pipeline.yaml": "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata:\n  name: quickstart\nspec: {}\n",
		"pipeline.hcl":  "# the same\npipeline \"quickstart\" {\n  executor = \"process\"\n}\n",
	})
	var note strings.Builder
	got, err := FindPipelineFile(dir, nil, NoteTo(&note))
	if err != nil || got != filepath.Join(dir, "pipeline.hcl") {
		t.Fatalf("got %q, %v", got, err)
	}
	want := "Using " + filepath.Join(dir, "pipeline.hcl") + ": pipeline.yaml beside it holds the same pipeline \"quickstart\" (name a file to use another).\n"
	if note.String() != want {
		t.Errorf("note = %q\nwant %q", note.String(), want)
	}
	// A folder argument gets the same answer; no note is asked for here.
	if got, err := FindPipelineFile(".", []string{dir}); err != nil || got != filepath.Join(dir, "pipeline.hcl") {
		t.Errorf("folder argument: got %q, %v", got, err)
	}
}

// Files naming different pipelines, or one pipeline in two HCL files, or a
// file whose name cannot be read, leave the choice to the user.
func TestFindPipelineFileRefusesToGuessBetweenDifferentPipelines(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"different names": {
			"a.hcl":  "pipeline \"a\" {}\n",
			"b.yaml": "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: b}\n",
		},
		"two HCL files": {
			"a.hcl":  "pipeline \"p\" {}\n",
			"b.hcl":  "pipeline \"p\" {}\n",
			"c.yaml": "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: p}\n",
		},
		"two YAML files": {
			"a.yaml": "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: p}\n",
			"b.yml":  "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: {name: p}\n",
		},
		"unreadable YAML": {
			"a.hcl":  "pipeline \"p\" {}\n",
			"b.yaml": "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata: [\n",
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeTree(t, files)
			var note strings.Builder
			_, err := FindPipelineFile(dir, nil, NoteTo(&note))
			if err == nil || !strings.Contains(err.Error(), "several pipeline files in "+dir) {
				t.Errorf("err = %v", err)
			}
			if note.Len() != 0 {
				t.Errorf("note = %q", note.String())
			}
		})
	}
}

// From a folder above the pipelines (the repository's root), the error
// says where they are: folders one and two levels down, not hidden ones.
func TestFindPipelineFileWithoutOneSuggestsTheFoldersBelow(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"examples/quickstart/pipeline.hcl": "pipeline \"q\" {}\n",
		"examples/other/p.yaml":            "apiVersion: flowctl/v1\nkind: Pipeline\n",
		"top/p.hcl":                        "pipeline \"t\" {}\n",
		"a/b/c/deep.hcl":                   "pipeline \"deep\" {}\n",
		".flowctl/hidden.hcl":              "pipeline \"h\" {}\n",
		"README.md":                        "pipeline \"x\" {}\n",
	})
	t.Chdir(dir)
	_, err := FindPipelineFile(".", nil)
	want := "no pipeline file in the current folder: looked for *.hcl, *.yaml and *.yml files holding a pipeline; name one as an argument (a file or a folder: pipelines are in examples/other, examples/quickstart, top)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	_, err = FindPipelineFile("examples", nil)
	if err == nil || !strings.Contains(err.Error(), "no pipeline file in examples: ") || !strings.Contains(err.Error(), "pipelines are in examples/other, examples/quickstart)") {
		t.Errorf("err = %v", err)
	}
}

// In every example folder a command needs no file argument: a folder
// holds one pipeline, in one format or both.
func TestEveryExampleFolderHasOnePipelineToTake(t *testing.T) {
	for dir, files := range exampleFiles(t) {
		got, err := FindPipelineFile(dir, nil)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		want := files[0]
		for _, f := range files {
			if filepath.Ext(f) == ".hcl" {
				want = f
			}
		}
		if got != want {
			t.Errorf("%s: took %s, want %s", dir, got, want)
		}
	}
}
