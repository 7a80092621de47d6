package state

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), ".flowctl", "p.state.db"), "p")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func meta(t *testing.T, s *Store) Meta {
	t.Helper()
	var m Meta
	if err := s.View(func(tx *Tx) error { m = tx.Meta(); return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewStateFileIsPrivateAndHasALineage(t *testing.T) {
	s := newStore(t)
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", fi.Mode().Perm())
	}
	m := meta(t, s)
	if len(m.Lineage) != 36 || m.Serial != 0 || m.Pipeline != "p" {
		t.Fatalf("meta = %+v", m)
	}
	again, err := Open(s.Path(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if meta(t, again).Lineage != m.Lineage {
		t.Fatal("lineage changed on reopen")
	}
	if _, err := Open(s.Path(), "other"); err == nil || !strings.Contains(err.Error(), `belongs to pipeline "p"`) {
		t.Fatalf("opening another pipeline's file: err = %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.db"), ""); err == nil {
		t.Fatal("opening a missing file without a pipeline name must fail")
	}
}

func TestSerialMovesOnlyWhenTheDesiredWorldChanges(t *testing.T) {
	s := newStore(t)
	rec := &Record{Address: "source.a", Kind: "source", ID: "a", Provider: "process", SpecHash: "h1", Handle: json.RawMessage(`{"pid":1}`), Status: StatusRunning}
	put := func(r Record) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.PutComponent(&r) }); err != nil {
			t.Fatal(err)
		}
	}
	put(*rec)
	if got := meta(t, s).Serial; got != 1 {
		t.Fatalf("serial after create = %d, want 1", got)
	}
	put(*rec) // same record again: a no-op apply
	statusOnly := *rec
	statusOnly.Status, statusOnly.RestartCount = StatusFailed, 3
	put(statusOnly)
	if got := meta(t, s).Serial; got != 1 {
		t.Fatalf("serial after no-op and status change = %d, want 1", got)
	}
	changed := *rec
	changed.SpecHash = "h2"
	put(changed)
	if got := meta(t, s).Serial; got != 2 {
		t.Fatalf("serial after spec change = %d, want 2", got)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteComponent("source.nope") }); err != nil {
		t.Fatal(err)
	}
	if got := meta(t, s).Serial; got != 2 {
		t.Fatalf("serial after deleting nothing = %d, want 2", got)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteComponent("source.a") }); err != nil {
		t.Fatal(err)
	}
	if got := meta(t, s).Serial; got != 3 {
		t.Fatalf("serial after delete = %d, want 3", got)
	}
}

func TestFailedUpdateWritesNothing(t *testing.T) {
	s := newStore(t)
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutComponent(&Record{Address: "source.a"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	_ = s.View(func(tx *Tx) error {
		recs, _ := tx.Components()
		if len(recs) != 0 || tx.Meta().Serial != 0 {
			t.Fatalf("rolled back update left %d records, serial %d", len(recs), tx.Meta().Serial)
		}
		return nil
	})
}

func TestHistoryIsAppendOnlyAndReturnsTheLastN(t *testing.T) {
	s := newStore(t)
	for i := 0; i < 5; i++ {
		if err := s.Update(func(tx *Tx) error {
			return tx.AppendHistory(&Event{Operation: "apply", Address: "source.a", Attempt: i})
		}); err != nil {
			t.Fatal(err)
		}
	}
	var last []*Event
	_ = s.View(func(tx *Tx) error { var err error; last, err = tx.History(2); return err })
	if len(last) != 2 || last[0].Attempt != 3 || last[1].Attempt != 4 || last[0].Seq >= last[1].Seq {
		t.Fatalf("last two = %+v %+v", last[0], last[1])
	}
	if meta(t, s).Serial != 0 {
		t.Fatal("history must not move the serial")
	}
}

func TestSecondOperationFailsNamingTheHolder(t *testing.T) {
	s := newStore(t)
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Acquire(context.Background(), LockOptions{Operation: "destroy"})
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.ID != l.Info.ID || le.Holder.Operation != "apply" || le.Holder.PID != os.Getpid() {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "flowctl force-unlock "+l.Info.ID) {
		t.Fatalf("message does not say how to unlock: %v", err)
	}
	// With a timeout, the second waits for the first.
	go func() { time.Sleep(300 * time.Millisecond); _ = l.Release() }()
	l2, err := s.Acquire(context.Background(), LockOptions{Operation: "destroy", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
	_ = l2.Release()
}

func TestLockOfADeadHolderIsBrokenWithAWarning(t *testing.T) {
	s := newStore(t)
	// Take the lock from a child process that then dies without releasing.
	cmd := exec.Command(os.Args[0], "-test.run=TestHelperTakeLockAndDie")
	cmd.Env = append(os.Environ(), "STATE_HELPER_PATH="+s.Path())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	holder, err := s.LockHolder()
	if err != nil || holder == nil {
		t.Fatalf("holder = %v, %v", holder, err)
	}
	var broken *LockInfo
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply", OnBreak: func(li LockInfo) { broken = &li }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if broken == nil || broken.ID != holder.ID {
		t.Fatalf("broken = %v, want %v", broken, holder)
	}
}

func TestHelperTakeLockAndDie(t *testing.T) {
	path := os.Getenv("STATE_HELPER_PATH")
	if path == "" {
		t.Skip("helper process only")
	}
	s, err := Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"}); err != nil {
		t.Fatal(err)
	}
	os.Exit(0)
}

func TestForceUnlockNeedsTheHoldersID(t *testing.T) {
	s := newStore(t)
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ForceUnlock("wrong"); !errors.Is(err, ErrLockMismatch) {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.ForceUnlock(l.Info.ID); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.LockHolder(); h != nil {
		t.Fatalf("still locked by %v", h)
	}
	var hist []*Event
	_ = s.View(func(tx *Tx) error { var err error; hist, err = tx.History(0); return err })
	if len(hist) != 1 || hist[0].Operation != "force-unlock" {
		t.Fatalf("history = %+v", hist)
	}
}

func TestConcurrentWritersAreSerialised(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.Update(func(tx *Tx) error {
				return tx.PutComponent(&Record{Address: "source.c" + string(rune('a'+i)), SpecHash: "h"})
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	var n int
	_ = s.View(func(tx *Tx) error { recs, err := tx.Components(); n = len(recs); return err })
	if n != 20 || meta(t, s).Serial != 20 {
		t.Fatalf("records = %d, serial = %d", n, meta(t, s).Serial)
	}
}

func TestDataNamespacesDoNotMoveTheSerial(t *testing.T) {
	s := newStore(t)
	if err := s.Update(func(tx *Tx) error { return tx.PutData("registry", "svc-1", []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	var got []byte
	_ = s.View(func(tx *Tx) error { got = tx.GetData("registry", "svc-1"); return nil })
	if string(got) != "x" || meta(t, s).Serial != 0 {
		t.Fatalf("data = %q serial = %d", got, meta(t, s).Serial)
	}
}

func TestAcquireWaitsForTheRestartWatchersBriefLock(t *testing.T) {
	s := newStore(t)
	held, err := s.Acquire(context.Background(), LockOptions{Operation: "restart", Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = held.Release()
	}()
	// Timeout 0 fails at once for any other holder, but a restart is
	// waited for.
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
	if err != nil {
		t.Fatalf("apply did not wait for the watcher's restart: %v", err)
	}
	defer l.Release()
	// An apply's lock, on the other hand, is not waited for.
	if _, err := s.Acquire(context.Background(), LockOptions{Operation: "restart", Brief: true}); err == nil {
		t.Fatal("took a lock an apply holds")
	}
}
