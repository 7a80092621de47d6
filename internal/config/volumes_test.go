package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMissingHostFoldersListsWhatApplyCreatesAndRefusesWhatItCannot(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "there"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "abs", "deep")
	p, diags := loadHCLString(t, `pipeline "v" {
  executor = "docker"
}

source "a" {
  image = "a"
  volume {
    host_path      = "out/data"
    container_path = "/data"
  }
  volume {
    host_path      = "there"
    container_path = "/there"
  }
  volume {
    host_path      = "file"
    container_path = "/file"
  }
}

sink "b" {
  image  = "b"
  inputs = [source.a]
  volume {
    host_path      = "./out/data/"
    container_path = "/data"
  }
  volume {
    host_path      = "`+abs+`"
    container_path = "/abs"
  }
  volume {
    host_path      = "file/sub/deeper"
    container_path = "/bad"
  }
}
`, LoadOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	folders, diags := MissingHostFolders(dir, p.Components)
	want := []HostFolder{
		{Path: "out/data", Components: []string{"source.a", "sink.b"}},
		{Path: abs, Components: []string{"sink.b"}},
	}
	slices.SortFunc(want, func(a, b HostFolder) int { return strings.Compare(a.Path, b.Path) })
	if !slices.EqualFunc(folders, want, func(a, b HostFolder) bool { return a.Path == b.Path && slices.Equal(a.Components, b.Components) }) {
		t.Errorf("folders %+v, want %+v", folders, want)
	}
	if len(diags) != 1 {
		t.Fatalf("want one error (the folder under a file), got %v", diags)
	}
	got := FormatDiagnostic(diags[0])
	for _, w := range []string{"test.hcl:33:22:", "sink.b: volume 2: host_path \"file/sub/deeper\"", filepath.Join(dir, "file") + " is a file, not a folder"} {
		if !strings.Contains(got, w) {
			t.Errorf("diagnostic %q does not say %q", got, w)
		}
	}

	if err := CreateHostFolders(dir, folders); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "out", "data"), abs} {
		if fi, err := os.Stat(f); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	if again, _ := MissingHostFolders(dir, p.Components); len(again) != 0 {
		t.Errorf("after creating them, still missing: %+v", again)
	}
}
