package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomicKeepsTheModeOfTheFileItReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.hcl")
	if err := os.WriteFile(path, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "new", 0o640)
	assertOnlyFile(t, dir, "p.hcl")
}

func TestWriteFileAtomicCreatesANewFileWithTheModeGiven(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.yaml")
	if err := WriteFileAtomic(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "data", 0o600)
	assertOnlyFile(t, dir, "out.yaml")
}

func TestWriteFileAtomicFailsInAMissingFolder(t *testing.T) {
	if err := WriteFileAtomic(filepath.Join(t.TempDir(), "no", "p.hcl"), nil, 0o644); err == nil {
		t.Error("want an error")
	}
}

func assertFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content || info.Mode().Perm() != mode {
		t.Errorf("%s: %q, mode %v; want %q, mode %v", path, b, info.Mode().Perm(), content, mode)
	}
}

// assertOnlyFile checks that no temporary file was left beside name.
func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only %s", names, name)
	}
}
