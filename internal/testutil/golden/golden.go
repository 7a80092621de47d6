// Package golden compares test output with golden files under testdata/,
// and rewrites them when the tests run with -update: the one flag every
// package's golden files answer to (`go test ./... -update` would reach
// packages without goldens too, so run it on the package at hand).
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update is registered once per test binary, by whichever package's test
// imports this one.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the tests produce")

// Updating says whether the tests run with -update.
func Updating() bool { return *update }

// Check compares got with the golden file at path (relative to the package
// under test), which -update writes first.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept)\n--- got\n%s--- want\n%s", path, got, want)
	}
}
