//go:build linux

package shim

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDescendantsFollowsChildrenAndTheirChildren: a shell started by this
// test runs two sleeps, one of them in a session of its own; Descendants of
// this process lists the shell and both sleeps, with their process groups
// and command lines, and nothing that is not below it.
func TestDescendantsFollowsChildrenAndTheirChildren(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 300071 & setsid sleep 300072 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range Descendants(os.Getpid()) {
			p, _ := os.FindProcess(d.PID)
			_ = p.Kill()
		}
		_ = cmd.Wait()
	})
	var ds []Descendant
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds = Descendants(os.Getpid())
		var cmds []string
		for _, d := range ds {
			cmds = append(cmds, d.Command)
		}
		if slices.Contains(cmds, "sleep 300071") && slices.Contains(cmds, "sleep 300072") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("descendants = %v, want the shell and both sleeps", cmds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	byCmd := map[string]Descendant{}
	for _, d := range ds {
		byCmd[d.Command] = d
		if d.PID == os.Getpid() || d.PID == os.Getppid() {
			t.Errorf("%d is not below this process", d.PID)
		}
	}
	sh, ok := byCmd["/bin/sh -c sleep 300071 & setsid sleep 300072 & wait"]
	if !ok || sh.PID != cmd.Process.Pid {
		t.Fatalf("the shell (pid %d) is not listed: %+v", cmd.Process.Pid, ds)
	}
	if s := byCmd["sleep 300072"]; s.PGID != s.PID {
		t.Errorf("the setsid sleep leads no group of its own: %+v", s)
	}
	if s := byCmd["sleep 300071"]; s.PGID == s.PID {
		t.Errorf("the plain sleep should share a group with the shell: %+v", s)
	}
	if len(ds) != 3 {
		var l []string
		for _, d := range ds {
			l = append(l, d.Command)
		}
		t.Errorf("%d descendants, want 3: %s", len(ds), strings.Join(l, "; "))
	}
}
