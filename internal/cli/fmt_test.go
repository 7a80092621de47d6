package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	messy     = "pipeline \"p\" {\nexecutor=\"docker\"\n  description   = \"d\"\n}\n"
	formatted = "pipeline \"p\" {\n  executor    = \"docker\"\n  description = \"d\"\n}\n"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFmtRewritesFilesAndNamesThem(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hcl": messy, "b.hcl": formatted, "c.yaml": "not: hcl\n"})
	a := filepath.Join(dir, "a.hcl")
	if err := os.Chmod(a, 0o640); err != nil {
		t.Fatal(err)
	}
	r := run(t, "fmt", dir)
	r.wantCode(t, 0)
	if r.out != a+"\n" {
		t.Errorf("stdout %q, want only %s", r.out, a)
	}
	if got := readFile(t, a); got != formatted {
		t.Errorf("a.hcl is now:\n%s", got)
	}
	info, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", info.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestFmtCheckChangesNothingAndExitsOne(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hcl": messy})
	r := run(t, "fmt", "-check", dir)
	r.wantCode(t, 1)
	if !strings.HasSuffix(r.out, "a.hcl\n") {
		t.Errorf("stdout: %q", r.out)
	}
	if got := readFile(t, filepath.Join(dir, "a.hcl")); got != messy {
		t.Errorf("-check changed the file:\n%s", got)
	}
}

func TestFmtCheckPassesWhenEverythingIsFormatted(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hcl": formatted})
	r := run(t, "fmt", "-check", dir)
	r.wantCode(t, 0)
	if r.out != "" {
		t.Errorf("stdout: %q", r.out)
	}
}

func TestFmtDiffShowsAUnifiedDiff(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hcl": messy})
	r := run(t, "fmt", "-check", "-diff", dir)
	r.wantCode(t, 1)
	for _, want := range []string{"--- old/", "+++ new/", "-executor=\"docker\"", "+  executor    = \"docker\""} {
		if !strings.Contains(r.out, want) {
			t.Errorf("diff lacks %q:\n%s", want, r.out)
		}
	}
}

func TestFmtLeavesAFileWithSyntaxErrorsUntouched(t *testing.T) {
	broken := "pipeline \"p\" {\n  executor = \n"
	dir := writeFiles(t, map[string]string{"bad.hcl": broken, "good.hcl": messy})
	r := run(t, "fmt", dir)
	r.wantCode(t, 1)
	bad := filepath.Join(dir, "bad.hcl")
	if !strings.Contains(r.err, "on "+bad+":2:14:") || !strings.Contains(r.err, "Error: Invalid expression") {
		t.Errorf("want the error with its position, got:\n%s", r.err)
	}
	if got := readFile(t, bad); got != broken {
		t.Errorf("bad.hcl changed:\n%s", got)
	}
	if got := readFile(t, filepath.Join(dir, "good.hcl")); got != formatted {
		t.Errorf("good.hcl was not formatted:\n%s", got)
	}
}

func TestFmtRecursesOnlyWhenAsked(t *testing.T) {
	dir := writeFiles(t, map[string]string{"sub/a.hcl": messy, ".hidden/b.hcl": messy})
	r := run(t, "fmt", "-check", dir)
	r.wantCode(t, 0)

	r = run(t, "fmt", "-recursive", dir)
	r.wantCode(t, 0)
	if r.out != filepath.Join(dir, "sub", "a.hcl")+"\n" {
		t.Errorf("stdout: %q", r.out)
	}
	if got := readFile(t, filepath.Join(dir, ".hidden", "b.hcl")); got != messy {
		t.Error("a hidden folder was formatted")
	}
}

func TestFmtFormatsTheCurrentFolderByDefault(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.hcl": messy})
	t.Chdir(dir)
	r := run(t, "fmt")
	r.wantCode(t, 0)
	if r.out != "a.hcl\n" || readFile(t, "a.hcl") != formatted {
		t.Errorf("stdout %q", r.out)
	}
}

func TestFmtReadsStandardInput(t *testing.T) {
	r := runWithInput(t, messy, "fmt", "-")
	r.wantCode(t, 0)
	if r.out != formatted {
		t.Errorf("got:\n%s", r.out)
	}
}

func TestFmtRefusesANonHCLFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.yaml": "kind: Pipeline\n"})
	r := run(t, "fmt", filepath.Join(dir, "p.yaml"))
	r.wantCode(t, 1)
	if !strings.Contains(r.err, "not an .hcl file") {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestFmtLeavesTheExamplesAsTheyAre(t *testing.T) {
	r := run(t, "fmt", "-check", "-recursive", filepath.Join("..", "..", "examples"))
	r.wantCode(t, 0)
}
