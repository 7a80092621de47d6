package state

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestBusyAndSettledFollowWritesOfAnotherProcess: a file this process
// wrote is neither busy nor waited for; a version it has not checked
// (here: the file touched, as another process's write would) is busy, and
// Settled waits until it is quiet; reading it (which checks it) makes it
// known again.
func TestBusyAndSettledFollowWritesOfAnotherProcess(t *testing.T) {
	s := newStore(t)
	if err := s.Update(func(tx *Tx) error { return tx.PutData("t", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if s.Busy() {
		t.Fatal("busy after this process's own write")
	}
	// Known: returns without waiting (an hour of quiet would hang the test).
	s.Settled(context.Background(), time.Hour, time.Hour)

	// Changed an hour ago: quiet for long enough already.
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(s.Path(), past, past); err != nil {
		t.Fatal(err)
	}
	if !s.Busy() {
		t.Fatal("not busy after the file changed under this process")
	}
	s.Settled(context.Background(), time.Minute, time.Hour)
	// Changed just now: returns once quiet for 20 ms.
	now := time.Now()
	if err := os.Chtimes(s.Path(), now, now); err != nil {
		t.Fatal(err)
	}
	s.Settled(context.Background(), 20*time.Millisecond, time.Hour)
	// Changed just now and never quiet long enough: returns at max.
	now = time.Now()
	if err := os.Chtimes(s.Path(), now, now); err != nil {
		t.Fatal(err)
	}
	s.Settled(context.Background(), time.Hour, 30*time.Millisecond)
	// Unknown, with the context ended: returns.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Settled(ctx, time.Hour, time.Hour)

	if err := s.View(func(tx *Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if s.Busy() {
		t.Fatal("busy after this process checked the version by reading it")
	}
}
