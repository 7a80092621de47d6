package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReformatHCLLaysOutAttributes(t *testing.T) {
	messy := "pipeline \"p\" {\nexecutor=\"docker\"\n  description   = \"d\"\n}\n"
	want := "pipeline \"p\" {\n  executor    = \"docker\"\n  description = \"d\"\n}\n"
	got, diags := ReformatHCL([]byte(messy), "p.hcl")
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if string(got) != want {
		t.Errorf("got:\n%s", got)
	}
}

func TestReformatHCLRefusesTextWithSyntaxErrors(t *testing.T) {
	got, diags := ReformatHCL([]byte("pipeline \"p\" {\n  executor = \n"), "bad.hcl")
	if !diags.HasErrors() || got != nil {
		t.Fatalf("got %q, %v", got, diags)
	}
	if r := diags[0].Subject; r == nil || r.Filename != "bad.hcl" || r.Start.Line != 2 {
		t.Errorf("diagnostic at %v, want bad.hcl line 2", r)
	}
}

func TestHCLFilesExpandsFoldersAndSkipsHiddenOnes(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"a.hcl": "", "B.HCL": "", "c.yaml": "",
		"sub/d.hcl": "", ".hidden/e.hcl": "",
	})
	rel := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			r, err := filepath.Rel(dir, p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, filepath.ToSlash(r))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		recursive bool
		want      []string
	}{
		{false, []string{"B.HCL", "a.hcl"}},
		{true, []string{"B.HCL", "a.hcl", "sub/d.hcl"}},
	} {
		got, err := HCLFiles([]string{dir}, tc.recursive)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rel(got), tc.want) {
			t.Errorf("recursive=%v: got %v, want %v", tc.recursive, rel(got), tc.want)
		}
	}
}

func TestHCLFilesTakesANamedFileOnlyIfItIsHCL(t *testing.T) {
	dir := writeTree(t, map[string]string{"p.hcl": "", "p.yaml": ""})
	got, err := HCLFiles([]string{filepath.Join(dir, "p.hcl")}, false)
	if err != nil || len(got) != 1 {
		t.Errorf("got %v, %v", got, err)
	}
	_, err = HCLFiles([]string{filepath.Join(dir, "p.yaml")}, false)
	if err == nil || !strings.HasSuffix(err.Error(), "p.yaml is not an .hcl file") {
		t.Errorf("err = %v", err)
	}
	_, err = HCLFiles([]string{filepath.Join(dir, "missing")}, false)
	if !os.IsNotExist(err) {
		t.Errorf("err = %v, want the file system's not-exist error", err)
	}
}
