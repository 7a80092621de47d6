package config

import (
	"os"
	"path/filepath"
	"testing"
)

// exampleFiles lists every pipeline under examples/, by folder.
func exampleFiles(t *testing.T) map[string][]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "examples", "*", "pipeline.*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no examples found under examples/")
	}
	byDir := map[string][]string{}
	for _, p := range paths {
		byDir[filepath.Dir(p)] = append(byDir[filepath.Dir(p)], p)
	}
	return byDir
}

func loadClean(t *testing.T, path string) *Pipeline {
	t.Helper()
	p, diags := Load(path, LoadOptions{Environ: []string{}})
	if len(diags) > 0 {
		t.Fatalf("%s: want no diagnostics, got:\n%s", path, FormatDiagnostics(diags))
	}
	return p
}

func TestEveryExampleLoadsWithoutDiagnostics(t *testing.T) {
	for _, files := range exampleFiles(t) {
		for _, f := range files {
			t.Run(f, func(t *testing.T) { loadClean(t, f) })
		}
	}
}

func TestExampleYAMLAndHCLDescribeTheSamePipeline(t *testing.T) {
	for dir := range exampleFiles(t) {
		yamlPath, hclPath := filepath.Join(dir, "pipeline.yaml"), filepath.Join(dir, "pipeline.hcl")
		if _, err := os.Stat(hclPath); err != nil {
			continue // a YAML-only example
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			y, h := loadClean(t, yamlPath), loadClean(t, hclPath)
			if string(y.CanonicalJSON()) != string(h.CanonicalJSON()) {
				t.Errorf("canonical JSON differs:\nyaml: %s\nhcl:  %s", y.CanonicalJSON(), h.CanonicalJSON())
			}
			if y.Hash() != h.Hash() {
				t.Errorf("hash differs: yaml %s, hcl %s", y.Hash(), h.Hash())
			}
		})
	}
}
