package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The -update flag rewrites golden files. Other test files of the package
// may declare it too; package variables are initialised before init runs, so
// this declares it only when none has.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/")
	}
}

func updatingGoldens() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

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
			golden := path + ".golden"
			if updatingGoldens() {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestInvalidFilesMatchGoldenDiagnostics -update)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ from %s (run with -update to accept)\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
	if n == 0 {
		t.Fatal("no files in testdata/invalid")
	}
}
