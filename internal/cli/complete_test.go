package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/state"
)

// completionFolder is a pipeline folder with three components in the file
// and, in its state, one more the file no longer declares.
func completionFolder(t *testing.T) string {
	t.Helper()
	dir := writeFiles(t, map[string]string{"pipeline.hcl": `pipeline "comp" {
  executor = "process"
}

source "ledger" {
  command = ["./bin/source"]
}

processor "ttp" {
  command = ["./bin/ttp"]
  inputs  = [source.ledger]
}

sink "files" {
  command = ["./bin/sink"]
  inputs  = [processor.ttp]
}
`})
	st, err := state.Open(filepath.Join(dir, ".flowctl", "comp.state.db"), "comp")
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(func(tx *state.Tx) error {
		return tx.PutComponent(&state.Record{Address: "sink.old", Kind: "sink", ID: "old", Provider: "process"})
	})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// completions runs cobra's hidden __complete command as a shell's
// completion script does and returns the words offered and the directive
// (":4": only these words; ":0": the shell may also complete files).
func completions(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	r := run(t, append([]string{"__complete"}, args...)...)
	r.wantCode(t, 0)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		t.Fatalf("__complete %v: no directive line\n%s", args, r.out)
	}
	var out []string
	for _, l := range lines[:len(lines)-1] {
		word, _, _ := strings.Cut(l, "\t")
		out = append(out, word)
	}
	return out, lines[len(lines)-1]
}

func TestCompletionOffersComponentAddresses(t *testing.T) {
	dir := completionFolder(t)
	t.Chdir(dir)
	all := []string{"processor.ttp", "sink.files", "sink.old", "source.ledger"}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"logs", ""}, all},
		{[]string{"logs", "sink."}, []string{"sink.files", "sink.old"}},
		{[]string{"logs", "source.ledger", ""}, []string{"processor.ttp", "sink.files", "sink.old"}},
		{[]string{"plan", "-target", ""}, all},
		{[]string{"plan", "--target", "proc"}, []string{"processor.ttp"}},
		{[]string{"apply", "-replace", "so"}, []string{"source.ledger"}},
		{[]string{"destroy", "-target", "sink.f"}, []string{"sink.files"}},
		{[]string{"state", "show", ""}, all},
		{[]string{"graph", "--format", ""}, []string{"text", "dot", "mermaid"}},
		{[]string{"convert", "--to", ""}, []string{"hcl", "yaml"}},
		{[]string{"show", "-format", "m"}, []string{"markdown"}},
		{[]string{"status", "-o", ""}, []string{"table", "json"}},
		{[]string{"logs", "-o", "j"}, []string{"json"}},
		{[]string{"logs", "./"}, nil}, // a path: the shell completes files
		{[]string{"state", "show", "source.ledger", ""}, nil},
	}
	for _, c := range cases {
		got, directive := completions(t, c.args...)
		if !slices.Equal(got, c.want) {
			t.Errorf("__complete %q: got %q, want %q", c.args, got, c.want)
		}
		if wantDirective := map[bool]string{true: ":0", false: ":4"}[c.want == nil]; directive != wantDirective {
			t.Errorf("__complete %q: directive %s, want %s", c.args, directive, wantDirective)
		}
	}
}

// A completion reads: it never creates a state file, and a folder without
// a pipeline offers nothing rather than an error.
func TestCompletionWritesNothing(t *testing.T) {
	dir := writeFiles(t, map[string]string{"pipeline.hcl": "pipeline \"fresh\" {\n  executor = \"process\"\n}\n\nsource \"a\" {\n  command = [\"./a\"]\n}\n"})
	t.Chdir(dir)
	if got, _ := completions(t, "logs", ""); !slices.Equal(got, []string{"source.a"}) {
		t.Errorf("got %q, want [source.a]", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ".flowctl")); !os.IsNotExist(err) {
		t.Errorf("a completion created the state folder: %v", err)
	}
	t.Chdir(t.TempDir())
	if got, _ := completions(t, "plan", "-target", ""); len(got) != 0 {
		t.Errorf("no pipeline here, yet got %q", got)
	}
}
