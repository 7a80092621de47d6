package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/state"
)

// Issue 13, finding 6: a 0-byte state file was silently given a new
// lineage, and the running components became "another state's". An
// emptied or deleted state file while the pipeline's components run must be
// reported, nothing written, and the way back (state restore) named.
func TestLostStateFileWhileComponentsRunIsReported(t *testing.T) {
	f := newFixture(t)
	cs := []comp{{kind: "source", id: "a"}, {kind: "sink", id: "b", inputs: []string{"source.a"}}}
	f.writePipeline(cs)
	f.apply()
	lineage := f.meta().Lineage
	// A second apply that changes the pipeline leaves a backup of the
	// first's state.
	cs[1].env = map[string]string{"TC_X": "1"}
	f.writePipeline(cs)
	f.apply()
	for _, c := range []struct {
		name, why string
		damage    func() error
	}{
		{"emptied", "is empty (0 bytes)", func() error { return os.WriteFile(f.statePath(), nil, 0o600) }},
		{"deleted", "does not exist", func() error { return os.Remove(f.statePath()) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.damage(); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"plan"}, {"apply", "-auto-approve"}, {"status"}} {
				r := f.run(args...)
				if r.code != 1 {
					t.Fatalf("want exit 1\n%s", r)
				}
				for _, want := range []string{
					c.why + ", but 2 component(s) of pipeline " + f.name + " run, made by state lineage " + lineage,
					"sink.b (process), source.a (process)",
					"Nothing was written",
					"flowctl state restore",
				} {
					if !strings.Contains(r.err, want) {
						t.Fatalf("stderr lacks %q\n%s", want, r)
					}
				}
			}
			if fi, err := os.Stat(f.statePath()); c.name == "emptied" && (err != nil || fi.Size() != 0) {
				t.Fatalf("the empty file was written: %v %v", fi, err)
			} else if c.name == "deleted" && err == nil {
				t.Fatal("a state file was created")
			}
			f.must(0, "state", "restore")
			if m := f.meta(); m.Lineage != lineage {
				t.Fatalf("restored lineage %s, want %s", m.Lineage, lineage)
			}
			// The backup is the state before the second apply: the plan
			// compares it with what runs, and apply reconciles the two.
			f.plan()
			f.apply()
			if got := f.plan().actions(); len(got) != 0 {
				t.Fatalf("plan after restore and apply: %v", got)
			}
		})
	}
	f.must(0, "destroy", "-auto-approve")
}

// A restore of another lineage's file is refused unless forced.
func TestStateRestoreRefusesAnotherLineage(t *testing.T) {
	f := newFixture(t)
	f.writePipeline([]comp{{kind: "source", id: "a"}})
	f.apply()
	other := filepath.Join(t.TempDir(), "other.state.db")
	if _, err := state.Open(other, f.name); err != nil {
		t.Fatal(err)
	}
	r := f.run("state", "restore", "--from", other)
	if r.code != 1 || !strings.Contains(r.err, "it is another state's file; restore it anyway with --force") {
		t.Fatalf("want a refusal\n%s", r)
	}
	lineage := f.meta().Lineage
	f.must(0, "state", "restore", "--from", other, "--force")
	if f.meta().Lineage == lineage {
		t.Fatal("--force did not restore")
	}
	f.must(0, "state", "restore", "--from", f.statePath()+".before-restore", "--force")
	if f.meta().Lineage != lineage {
		t.Fatal("the file kept as .before-restore is not the one replaced")
	}
}
