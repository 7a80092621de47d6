//go:build linux

package procinfo

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestSelfIsAlive(t *testing.T) {
	id, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if id.PID != os.Getpid() || id.StartTicks == 0 {
		t.Fatalf("identity = %+v", id)
	}
	if !Alive(id) {
		t.Fatal("self not alive")
	}
	if Alive(Identity{PID: id.PID, StartTicks: id.StartTicks + 1}) {
		t.Fatal("a different start time must not match")
	}
}

func TestExitedProcessIsNotAlive(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(id) {
		t.Fatal("child not alive")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if Alive(id) {
		t.Fatal("reaped child still alive")
	}
	if _, err := Of(cmd.Process.Pid); !errors.Is(err, ErrNoProcess) {
		t.Fatalf("err = %v, want ErrNoProcess", err)
	}
}

func TestParseStatCopesWithParenthesesInTheCommandName(t *testing.T) {
	line := "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 18446744073709551615"
	st, err := parseStat(42, line)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.PPID != 1 || st.PGID != 42 || st.SID != 42 || st.StartTicks != 98765 {
		t.Fatalf("stat = %+v", st)
	}
}
