package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/testutil/golden"
)

// TestInvalidFilesMatchGoldenDiagnostics loads every pipeline file in
// testdata/invalid (YAML and HCL alike) and compares what the user would be
// told with NAME.golden. Each file must fail, and none may panic the loader.
// Run with -update to rewrite the goldens, then read every changed one.
func TestInvalidFilesMatchGoldenDiagnostics(t *testing.T) {
	entries, err := os.ReadDir("testdata/invalid")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasSuffix(name, ".golden") {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			path := filepath.ToSlash(filepath.Join("testdata", "invalid", name))
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, diags := LoadBytes(src, path, LoadOptions{Environ: []string{}})
			if !diags.HasErrors() {
				t.Errorf("%s loads without error:\n%s", name, FormatDiagnostics(diags))
			}
			got := FormatDiagnostics(diags)
			golden.Check(t, path+".golden", []byte(got))
		})
	}
	if n == 0 {
		t.Fatal("no files in testdata/invalid")
	}
}
