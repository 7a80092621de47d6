package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Issue 13, finding 7: with the state file immutable, status, state list
// and history failed (open state …: operation not permitted). Commands
// that only read the state open it read-only.
func TestReadOnlyCommandsReadAnUnwritableStateFile(t *testing.T) {
	f := newFixture(t)
	f.writePipeline([]comp{{kind: "source", id: "a"}})
	f.apply()
	before, err := os.ReadFile(f.statePath())
	if err != nil {
		t.Fatal(err)
	}
	// root may write any file but an immutable one; others no file of
	// mode 0400.
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", f.statePath()).CombinedOutput(); err != nil {
			t.Fatalf("chattr +i: %v\n%s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", f.statePath()).Run() })
	} else if err := os.Chmod(f.statePath(), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.statePath(), before, 0o600); err == nil {
		t.Fatal("the state file is still writable: the test proves nothing")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "source.a"},
		{[]string{"state", "list"}, "source.a"},
		{[]string{"state", "show", "source.a"}, "address"},
		{[]string{"history"}, "apply"},
		{[]string{"logs", "--tail", "1"}, ""},
		// plan takes the operation lock (an entry in the file) unless
		// -lock=false, which reads the state and writes nothing.
		{[]string{"plan", "-lock=false"}, "No changes."},
	} {
		r := f.must(0, c.args...)
		if !strings.Contains(r.out, c.want) {
			t.Fatalf("stdout lacks %q\n%s", c.want, r)
		}
	}
	// A command that writes says why it cannot, without a panic.
	r := f.run("apply", "-auto-approve")
	if r.code != 1 || strings.Contains(r.err, "panic") {
		t.Fatalf("want exit 1\n%s", r)
	}
	if after, _ := os.ReadFile(f.statePath()); string(after) != string(before) {
		t.Fatal("the state file changed")
	}
	if os.Geteuid() == 0 {
		_ = exec.Command("chattr", "-i", f.statePath()).Run()
	} else {
		_ = os.Chmod(f.statePath(), 0o600)
	}
	f.must(0, "destroy", "-auto-approve")
}
