package execpath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noexec := filepath.Join(bin, "data")
	if err := os.WriteFile(noexec, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		env  []string
		want string
		err  error
	}{
		{name: "./bin/tool", want: exe},
		{name: "bin/tool", want: exe},
		{name: exe, want: exe},
		{name: "tool", env: []string{"PATH=/nonexistent:" + bin}, want: exe},
		{name: "tool", env: []string{"PATH=bin"}, want: exe}, // relative PATH entries resolve against dir
		{name: "tool", env: []string{"PATH=/nonexistent"}, err: ErrNotFound},
		{name: "./bin/missing", err: syscall.ENOENT},
		{name: "./bin/data", err: fs.ErrPermission},
		{name: "./bin", err: nil}, // a directory: error checked below
	} {
		got, err := Resolve(tc.name, dir, tc.env)
		if tc.name == "./bin" {
			if err == nil || !strings.Contains(err.Error(), "is a directory") {
				t.Errorf("%s: err = %v, want a directory error", tc.name, err)
			}
			continue
		}
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("%s: err = %v, want %v naming the command", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestResolveFallsBackToTheCLIPath(t *testing.T) {
	got, err := Resolve("sh", t.TempDir(), []string{"FOO=bar"})
	if err != nil || !filepath.IsAbs(got) {
		t.Fatalf("sh: %q, %v", got, err)
	}
}

func TestWithPath(t *testing.T) {
	t.Setenv("PATH", "/cli/path")
	if got := WithPath([]string{"A=1"}); len(got) != 2 || got[1] != "PATH=/cli/path" {
		t.Fatalf("WithPath = %q", got)
	}
	if got := WithPath([]string{"PATH=/mine"}); len(got) != 1 || got[0] != "PATH=/mine" {
		t.Fatalf("WithPath kept = %q", got)
	}
}
