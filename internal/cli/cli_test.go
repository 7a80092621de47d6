package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/testutil/golden"
)

// result is what one in-process run of flowctl produced.
type result struct {
	out, err string
	code     int
}

// run executes flowctl with args in-process, with stdin as given.
func runWithInput(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb}, BuildInfo{Version: "1.2.3", Commit: "abc1234"})
	return result{out: out.String(), err: errb.String(), code: code}
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	return runWithInput(t, "", args...)
}

func (r result) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.out, r.err)
	}
}

// assertGolden compares got with testdata/NAME, rewriting it under -update.
func assertGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(got))
}

// example is the path of a pipeline under examples/.
func example(name string) string { return filepath.Join("..", "..", "examples", name) }

// writeFiles creates files (name -> content) under a new temporary folder.
func writeFiles(t *testing.T, files map[string]string) string {
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

func TestUnknownCommandExitsOne(t *testing.T) {
	r := run(t, "frobnicate")
	r.wantCode(t, 1)
	if !strings.Contains(r.err, `unknown command "frobnicate"`) {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestUnknownFlagPointsAtHelp(t *testing.T) {
	r := run(t, "validate", "--frobnicate")
	r.wantCode(t, 1)
	if !strings.Contains(r.err, "unknown flag: --frobnicate") || !strings.Contains(r.err, "Run 'flowctl validate --help' for usage") {
		t.Errorf("stderr: %s", r.err)
	}
}

func TestHelpListsTheCommands(t *testing.T) {
	r := run(t, "--help")
	r.wantCode(t, 0)
	for _, c := range []string{"validate", "graph", "fmt", "convert", "version", "--no-color"} {
		if !strings.Contains(r.out, c) {
			t.Errorf("help lacks %q:\n%s", c, r.out)
		}
	}
}

func TestLongFlagsTakeOneDashOrTwo(t *testing.T) {
	for _, flagForm := range []string{"-json", "--json"} {
		r := run(t, "version", flagForm)
		r.wantCode(t, 0)
		if !strings.HasPrefix(r.out, "{") {
			t.Errorf("%s: want JSON, got %s", flagForm, r.out)
		}
	}
}

func TestSingleDashRewriteLeavesValuesAndOperandsAlone(t *testing.T) {
	root := NewRootCommand(Streams{}, BuildInfo{})
	got := singleDashLongFlags(root, []string{"validate", "-var", "x=-json", "-json", "-unknown", "--", "-json"})
	want := []string{"validate", "--var", "x=-json", "--json", "-unknown", "--", "-json"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}
