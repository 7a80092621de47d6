package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var lockIDPattern = regexp.MustCompile(`locked by another operation: ID ([0-9a-f-]{36}), operation (\w+), pid (\d+) on `)

// started is a flowctl command running in the background.
type started struct {
	cmd      *exec.Cmd
	out, err syncBuffer
	done     chan struct{}
	code     int
}

// syncBuffer is a bytes.Buffer that the test may read while the command
// writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (f *fixture) start(args ...string) *started {
	f.t.Helper()
	s := &started{done: make(chan struct{})}
	s.cmd = f.command(context.Background(), f.dir, args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.err
	if err := s.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		if err := s.cmd.Wait(); err != nil {
			s.code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				s.code = ee.ExitCode()
			}
		}
	}()
	f.t.Cleanup(func() { _ = s.cmd.Process.Kill(); <-s.done })
	return s
}

// wait returns the command's exit code once it has ended.
func (s *started) wait(t testing.TB) int {
	t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(commandTimeout):
		t.Fatalf("%v did not end", s.cmd.Args)
		return 0
	}
}

func TestConcurrentAppliesOneProceedsOtherNamesHolder(t *testing.T) {
	f := newFixture(t)
	cs := []comp{{kind: "source", id: "slow", env: map[string]string{"TC_START_DELAY": "1500ms"}}}
	f.writePipeline(cs)

	// Started together: exactly one gets the lock. (Should the second start
	// so late that the first is done, it finds nothing to do: no contention
	// to check, but no double start either.)
	a, b := f.start("apply", "-auto-approve"), f.start("apply", "-auto-approve")
	codeA, codeB := a.wait(t), b.wait(t)
	winner, loser := a, b
	if codeA != 0 {
		winner, loser = b, a
	}
	switch {
	case codeA == 0 && codeB == 0:
		if !strings.Contains(a.out.String()+b.out.String(), "No changes.") {
			t.Fatalf("both applies proceeded\n--- a\n%s\n--- b\n%s", a.out.String(), b.out.String())
		}
		t.Logf("the second apply started after the first ended")
	case codeA+codeB != 1:
		t.Fatalf("exit codes %d and %d, want one 0 and one 1\n--- a\n%s%s\n--- b\n%s%s", codeA, codeB, a.out.String(), a.err.String(), b.out.String(), b.err.String())
	default:
		m := lockIDPattern.FindStringSubmatch(loser.err.String())
		if m == nil || m[2] != "apply" || m[3] != fmt.Sprint(winner.cmd.Process.Pid) {
			t.Fatalf("the refused apply does not name the holder (lock ID, operation, pid %d):\n%s", winner.cmd.Process.Pid, loser.err.String())
		}
		if !strings.Contains(loser.err.String(), "flowctl force-unlock "+m[1]) {
			t.Errorf("no force-unlock hint with the lock ID:\n%s", loser.err.String())
		}
	}
	f.assertConverged(addrs(cs))

	// One apply under way, another started: refused, naming the holder.
	f.must(0, "destroy", "-auto-approve")
	a = f.start("apply", "-auto-approve")
	waitFor(t, 20*time.Second, "the first apply to start a component", func() bool { return len(f.runRecordTimes()) == 1 })
	r := f.must(1, "apply", "-auto-approve")
	if m := lockIDPattern.FindStringSubmatch(r.err); m == nil || m[2] != "apply" || m[3] != fmt.Sprint(a.cmd.Process.Pid) {
		t.Fatalf("the second apply does not name the holder (pid %d):\n%s", a.cmd.Process.Pid, r)
	}
	if code := a.wait(t); code != 0 {
		t.Fatalf("first apply: exit %d\n%s%s", code, a.out.String(), a.err.String())
	}
	f.assertConverged(addrs(cs))

	// A plan or a destroy while an apply holds the lock fails the same way;
	// with -lock-timeout it waits for the lock instead.
	cs[0].env["MODE"] = "two"
	f.writePipeline(cs)
	a = f.start("apply", "-auto-approve")
	waitFor(t, 20*time.Second, "the apply to start replacing", func() bool { return strings.Contains(a.out.String(), "Replacing...") })
	for _, args := range [][]string{{"plan"}, {"destroy", "-auto-approve"}} {
		r := f.must(1, args...)
		if m := lockIDPattern.FindStringSubmatch(r.err); m == nil || m[2] != "apply" || m[3] != fmt.Sprint(a.cmd.Process.Pid) {
			t.Errorf("%s does not name the holder:\n%s", args[0], r)
		}
	}
	if r := f.run("plan", "-lock-timeout", "30s", "-detailed-exitcode"); r.code != 0 {
		t.Errorf("plan -lock-timeout did not wait for the apply to end\n%s", r)
	}
	if code := a.wait(t); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, a.out.String(), a.err.String())
	}
	f.assertConverged(addrs(cs))
}

func TestForceUnlock(t *testing.T) {
	f := newFixture(t)
	cs := []comp{{kind: "source", id: "slow", env: map[string]string{"TC_START_DELAY": "1500ms"}}}
	f.writePipeline(cs)
	a := f.start("apply", "-auto-approve")
	waitFor(t, 20*time.Second, "the apply to hold the lock", func() bool { return len(f.runRecordTimes()) == 1 })
	r := f.must(1, "plan")
	m := lockIDPattern.FindStringSubmatch(r.err)
	if m == nil {
		t.Fatalf("no lock holder named\n%s", r)
	}
	if r := f.must(1, "force-unlock", "00000000-0000-0000-0000-000000000000"); !strings.Contains(r.err, "does not match") {
		t.Fatalf("force-unlock with a wrong ID\n%s", r)
	}
	if r := f.must(0, "force-unlock", m[1]); !strings.Contains(r.out, "Removed the state lock (ID "+m[1]) {
		t.Fatalf("force-unlock\n%s", r)
	}
	if code := a.wait(t); code != 0 {
		t.Fatalf("apply after its lock was forced: exit %d\n%s%s", code, a.out.String(), a.err.String())
	}
	r = f.must(0, "history", "-json")
	if !strings.Contains(r.out, `"operation": "force-unlock"`) {
		t.Errorf("force-unlock not in history\n%s", r)
	}
	f.assertConverged(addrs(cs))
}
