package serve

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

func TestEndsDuringADestroyDoNotWakeTheWatcher(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "p.state.db"), "p")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ends := make(chan struct{}, 1)
	woken := make(chan struct{}, 16)
	go gateEnds(ctx, st, ends, func() { woken <- struct{}{} })
	wakes := func(op string) bool {
		t.Helper()
		if op != "" {
			l, err := st.Acquire(ctx, state.LockOptions{Operation: op})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := l.Release(); err != nil {
					t.Error(err)
				}
			}()
		}
		ends <- struct{}{}
		// A wake comes at once; none is awaited for a while (the gate,
		// having read the lock, swallows the end during a destroy).
		wait := 30 * time.Second
		if op == destroyOperation {
			wait = 4 * endGateQuiet
		}
		select {
		case <-woken:
			return true
		case <-time.After(wait):
			return false
		}
	}
	if !wakes("") {
		t.Error("an end with no operation running did not wake the watcher")
	}
	if !wakes("apply") {
		t.Error("an end during an apply did not wake the watcher")
	}
	if wakes("destroy") {
		t.Error("an end during a destroy woke the watcher")
	}
	if !wakes("") {
		t.Error("an end after the destroy did not wake the watcher")
	}
}
