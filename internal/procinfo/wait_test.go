//go:build linux

package procinfo

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startSleep starts `sleep 60` (not reaped by the test until it ends it).
func startSleep(t *testing.T) (*exec.Cmd, Identity) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, id
}

func TestWaitGoneSeesTheExitOfAProcessItDidNotStart(t *testing.T) {
	cmd, id := startSleep(t)
	// The exit happens while WaitGone waits; the zombie it leaves (the
	// test reaps it only afterwards) counts as gone, as for Alive.
	go func() { time.Sleep(20 * time.Millisecond); _ = cmd.Process.Signal(syscall.SIGTERM) }()
	if !WaitGone(context.Background(), id, time.Minute) {
		t.Fatal("WaitGone = false for a process that was terminated")
	}
	if Alive(id) {
		t.Fatal("WaitGone returned while the process was alive")
	}
}

func TestWaitGoneGivesUpOnALiveProcess(t *testing.T) {
	_, id := startSleep(t)
	if WaitGone(context.Background(), id, 30*time.Millisecond) {
		t.Fatal("WaitGone = true for a live process after its time ran out")
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if WaitGone(ctx, id, time.Minute) {
		t.Fatal("WaitGone = true for a live process when its context ended")
	}
	if !Alive(id) {
		t.Fatal("the process should still run")
	}
}

func TestWaitGoneOfAnotherIdentityOfALivePidIsAtOnce(t *testing.T) {
	_, id := startSleep(t)
	other := Identity{PID: id.PID, StartTicks: id.StartTicks + 1}
	// The pid lives, but not as the process the identity was taken of:
	// that one is gone, however long the pid's new owner runs.
	if !WaitGone(context.Background(), other, time.Minute) {
		t.Fatal("WaitGone = false for an identity whose pid names another process")
	}
	if !WaitGone(context.Background(), Identity{PID: 1 << 30}, time.Minute) {
		t.Fatal("WaitGone = false for a pid no process has")
	}
}
