package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil/pgtest"
)

// opener opens the state of a pipeline on one backend; the same opener
// opens the same state again.
type opener func(t *testing.T, pipeline string, opts ...Option) (*Store, error)

// backends are the file and the database, each with a fresh state of its
// own per opener: the Store-level tests run against both.
func backends(t *testing.T) map[string]func() opener {
	var srv *pgtest.Server
	var mu sync.Mutex
	var n atomic.Int64
	return map[string]func() opener{
		"file": func() opener {
			dir := t.TempDir()
			return func(t *testing.T, pipeline string, opts ...Option) (*Store, error) {
				return Open(filepath.Join(dir, ".flowctl", "p.state.db"), pipeline, opts...)
			}
		},
		"pg": func() opener {
			mu.Lock()
			if srv == nil {
				srv = pgtest.Start(t)
			}
			mu.Unlock()
			ws := fmt.Sprintf("ws%d", n.Add(1))
			return func(t *testing.T, pipeline string, opts ...Option) (*Store, error) {
				return OpenPG(PGConfig{ConnStr: srv.ConnStr, Schema: "st", Workspace: ws}, filepath.Join(t.TempDir(), "p.state.db"), pipeline, opts...)
			}
		},
	}
}

func mustOpen(t *testing.T, o opener, pipeline string, opts ...Option) *Store {
	t.Helper()
	s, err := o(t, pipeline, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBackendsKeepTheSameState(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := mk()
			if _, err := o(t, "p", IfExists()); !errors.Is(err, ErrNoState) {
				t.Fatalf("IfExists on no state: err = %v", err)
			}
			if _, err := o(t, ""); err == nil {
				t.Fatal("opening no state without a pipeline name must fail")
			}
			s := mustOpen(t, o, "p")
			if !s.Created() {
				t.Fatal("a fresh state is not reported as created")
			}
			m0 := meta(t, s)
			if len(m0.Lineage) != 36 || m0.Serial != 0 || m0.Pipeline != "p" || m0.FormatVersion != FormatVersion || m0.TokenGeneration != 1 {
				t.Fatalf("meta = %+v", m0)
			}
			steps := []struct {
				name   string
				fn     func(tx *Tx) error
				serial uint64
			}{
				{"new record", func(tx *Tx) error {
					return tx.PutComponent(&Record{Address: "source.a", SpecHash: "h1", Status: StatusCreating})
				}, 1},
				{"status only", func(tx *Tx) error {
					return tx.PutComponent(&Record{Address: "source.a", SpecHash: "h1", Status: StatusRunning})
				}, 1},
				{"new spec", func(tx *Tx) error {
					return tx.PutComponent(&Record{Address: "source.a", SpecHash: "h2", Status: StatusRunning})
				}, 2},
				{"second record", func(tx *Tx) error {
					return tx.PutComponent(&Record{Address: "sink.b", SpecHash: "h", Status: StatusRunning})
				}, 3},
				{"data", func(tx *Tx) error { return tx.PutData("registry", "svc/1", []byte{0, 1, 2}) }, 3},
				{"more data", func(tx *Tx) error { return tx.PutData("registry", "svc/0", []byte("zero")) }, 3},
				{"history", func(tx *Tx) error {
					for i := range 5 {
						if err := tx.AppendHistory(&Event{Operation: "apply", Detail: fmt.Sprint(i)}); err != nil {
							return err
						}
					}
					return nil
				}, 3},
				{"amend", func(tx *Tx) error { return tx.AmendHistory(&Event{Seq: 2, Operation: "apply", Result: "ok"}) }, 3},
				{"failed", func(tx *Tx) error {
					_ = tx.DeleteComponent("sink.b")
					_ = tx.PutData("registry", "svc/9", []byte("x"))
					return errors.New("boom")
				}, 3},
				{"rotate", func(tx *Tx) error { _, err := tx.BumpTokenGeneration(); return err }, 4},
				{"delete", func(tx *Tx) error { return tx.DeleteComponent("sink.b") }, 5},
				{"delete none", func(tx *Tx) error { return tx.DeleteComponent("sink.none") }, 5},
				{"delete data", func(tx *Tx) error { return tx.DeleteData("registry", "svc/1") }, 5},
			}
			for _, st := range steps {
				err := s.Update(st.fn)
				if (err != nil) != (st.name == "failed") {
					t.Fatalf("%s: err = %v", st.name, err)
				}
				if got := meta(t, s).Serial; got != st.serial {
					t.Fatalf("after %s: serial = %d, want %d", st.name, got, st.serial)
				}
			}
			// Reopened, the state is the one written.
			s2 := mustOpen(t, o, "p")
			if s2.Created() || meta(t, s2).Lineage != m0.Lineage {
				t.Fatalf("reopen: created = %v, meta = %+v", s2.Created(), meta(t, s2))
			}
			err := s2.View(checkWrittenState)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o(t, "other"); err == nil || !strings.Contains(err.Error(), `belongs to pipeline "p"`) {
				t.Fatalf("another pipeline's state: err = %v", err)
			}
			ro := mustOpen(t, o, "p", ReadOnly())
			if err := ro.Update(func(tx *Tx) error { return nil }); !errors.Is(err, errReadOnly) {
				t.Fatalf("read-only update: err = %v", err)
			}
		})
	}
}

// checkWrittenState checks what TestBackendsKeepTheSameState wrote.
func checkWrittenState(tx *Tx) error {
	recs, err := tx.Components()
	if err != nil || len(recs) != 1 || recs[0].Address != "source.a" || recs[0].SpecHash != "h2" || recs[0].CreatedAt.IsZero() {
		return fmt.Errorf("components = %+v, %v", recs, err)
	}
	if r, _ := tx.Component("sink.b"); r != nil {
		return fmt.Errorf("deleted record still there: %+v", r)
	}
	h, err := tx.History(3)
	if err != nil || len(h) != 3 || h[0].Seq != 3 || h[2].Seq != 5 {
		return fmt.Errorf("history(3) = %+v, %v", h, err)
	}
	all, _ := tx.History(0)
	if len(all) != 5 || all[1].Result != "ok" {
		return fmt.Errorf("history = %+v", all)
	}
	var keys []string
	_ = tx.ForEachData("registry", func(k string, v []byte) error { keys = append(keys, k+"="+string(v)); return nil })
	if strings.Join(keys, ",") != "svc/0=zero" || tx.GetData("registry", "svc/9") != nil || tx.TokenGeneration() != 2 {
		return fmt.Errorf("data = %v, generation %d", keys, tx.TokenGeneration())
	}
	return nil
}

// TestConcurrentWritersLoseNoUpdate: writers that read, decide and write
// in one transaction never see the same serial twice: of two that both
// require the serial they first saw, one fails; counters incremented
// from two stores at once lose no increment.
func TestConcurrentWritersLoseNoUpdate(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := mk()
			a, b := mustOpen(t, o, "p"), mustOpen(t, o, "p")
			var wg sync.WaitGroup
			for i := range 20 {
				s := a
				if i%2 == 1 {
					s = b
				}
				wg.Go(func() {
					err := s.Batch(func(tx *Tx) error {
						return tx.PutData("t", "n", itob(btoi(tx.GetData("t", "n"))+1))
					})
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			var n uint64
			_ = a.View(func(tx *Tx) error { n = btoi(tx.GetData("t", "n")); return nil })
			if n != 20 {
				t.Fatalf("counter = %d after 20 increments: updates were lost", n)
			}
			// Two writers that each require the serial both saw.
			seen := meta(t, a).Serial
			start := make(chan struct{})
			errs := make(chan error, 2)
			for i, s := range []*Store{a, b} {
				go func() {
					<-start
					errs <- s.Update(func(tx *Tx) error {
						if got := tx.Meta().Serial; got != seen {
							return fmt.Errorf("serial is %d, not %d", got, seen)
						}
						time.Sleep(50 * time.Millisecond) // widen the race
						return tx.PutComponent(&Record{Address: fmt.Sprintf("source.w%d", i), SpecHash: "h"})
					})
				}()
			}
			close(start)
			e1, e2 := <-errs, <-errs
			if (e1 == nil) == (e2 == nil) {
				t.Fatalf("both or neither of two racing writers succeeded: %v, %v", e1, e2)
			}
			if got := meta(t, a).Serial; got != seen+1 {
				t.Fatalf("serial = %d, want %d", got, seen+1)
			}
		})
	}
}

func TestLockOfEitherBackendNamesItsHolder(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := mustOpen(t, mk(), "p")
			l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
			if err != nil {
				t.Fatal(err)
			}
			h, err := s.LockHolder()
			if err != nil || h == nil || h.ID != l.Info.ID || h.PID != os.Getpid() || h.Operation != "apply" {
				t.Fatalf("holder = %+v, %v", h, err)
			}
			var le *LockedError
			_, err = s.Acquire(context.Background(), LockOptions{Operation: "destroy"})
			if !errors.As(err, &le) || le.Holder.ID != l.Info.ID {
				t.Fatalf("second acquire: err = %v", err)
			}
			hint := map[string]string{"file": "If that operation is gone, run: flowctl force-unlock", "pg": "The lock ends with that operation, however it ends."}[name]
			if !strings.Contains(err.Error(), hint) {
				t.Fatalf("second acquire: %v\nwant %q", err, hint)
			}
			if _, err := s.ForceUnlock("wrong"); !errors.Is(err, ErrLockMismatch) {
				t.Fatalf("force-unlock with a wrong ID: err = %v", err)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			if h, err := s.LockHolder(); h != nil || err != nil {
				t.Fatalf("after release: holder = %+v, %v", h, err)
			}
			l2, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.ForceUnlock(l2.Info.ID); err != nil {
				t.Fatal(err)
			}
			l3, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
			if err != nil {
				t.Fatalf("acquire after force-unlock: %v", err)
			}
			_ = l2.Release() // leaves l3's lock alone
			if h, _ := s.LockHolder(); h == nil || h.ID != l3.Info.ID {
				t.Fatalf("the force-unlocked holder's release removed the new lock: holder = %+v", h)
			}
			_ = l3.Release()
		})
	}
}

// TestPGLockDiesWithItsHolder: a process that holds the lock is killed
// (-9); the lock goes with its session, and the next Acquire takes it
// without force-unlock.
func TestPGLockDiesWithItsHolder(t *testing.T) {
	srv := pgtest.Start(t)
	cfg := PGConfig{ConnStr: srv.ConnStr, Workspace: "held"}
	s, err := OpenPG(cfg, filepath.Join(t.TempDir(), "p.state.db"), "p")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPGHoldLock$")
	cmd.Env = append(os.Environ(), "STATE_HELPER_PG="+srv.ConnStr)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "locked") {
		t.Fatalf("helper: %q, %v", line, err)
	}
	h, err := s.LockHolder()
	if err != nil || h == nil || h.PID != cmd.Process.Pid {
		t.Fatalf("holder = %+v, %v; want pid %d", h, err, cmd.Process.Pid)
	}
	var le *LockedError
	if _, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"}); !errors.As(err, &le) || le.Holder.PID != cmd.Process.Pid {
		t.Fatalf("acquire while held: err = %v", err)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The server ends the session once it sees the socket closed.
	var l *Lock
	for deadline := time.Now().Add(60 * time.Second); l == nil; {
		l, err = s.Acquire(context.Background(), LockOptions{Operation: "apply"})
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("the lock outlived its killed holder: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer l.Release()
	if h, _ := s.LockHolder(); h == nil || h.ID != l.Info.ID {
		t.Fatalf("holder = %+v", h)
	}
}

func TestHelperPGHoldLock(t *testing.T) {
	conn := os.Getenv("STATE_HELPER_PG")
	if conn == "" {
		t.Skip("helper process only")
	}
	s, err := OpenPG(PGConfig{ConnStr: conn, Workspace: "held"}, filepath.Join(t.TempDir(), "p.state.db"), "p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	time.Sleep(time.Hour) // until the test kills it
}

// TestPGSurvivesADatabaseRestart: the pool's connections die with the
// server; the next transaction reconnects, and nothing written is lost.
func TestPGSurvivesADatabaseRestart(t *testing.T) {
	srv := pgtest.Start(t)
	s, err := OpenPG(PGConfig{ConnStr: srv.ConnStr}, filepath.Join(t.TempDir(), "p.state.db"), "p")
	if err != nil {
		t.Fatal(err)
	}
	put := func(addr string) error {
		return s.Update(func(tx *Tx) error { return tx.PutComponent(&Record{Address: addr, SpecHash: "h"}) })
	}
	if err := put("source.before"); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	if err := put("source.after"); err != nil {
		t.Fatalf("update after a restart: %v", err)
	}
	srv.Stop()
	// With the server down, a write waits for it as long as the open
	// timeout, then fails.
	if _, err := OpenPG(PGConfig{ConnStr: srv.ConnStr}, s.Path(), "p", WithOpenTimeout(time.Second)); err == nil {
		t.Fatal("opened a state with the server down")
	}
	s.openTimeout = time.Second
	if err := put("source.down"); err == nil {
		t.Fatal("an update with the server down succeeded")
	} else if strings.Contains(err.Error(), srv.Password) {
		t.Fatalf("the error shows the password: %v", err)
	}
	srv.StartAgain()
	var addrs []string
	err = s.View(func(tx *Tx) error {
		recs, err := tx.Components()
		for _, r := range recs {
			addrs = append(addrs, r.Address)
		}
		return err
	})
	if err != nil || strings.Join(addrs, ",") != "source.after,source.before" || meta(t, s).Serial != 2 {
		t.Fatalf("after restarts: %v, %v, serial %d", addrs, err, meta(t, s).Serial)
	}
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
	if err != nil {
		t.Fatalf("lock after a restart: %v", err)
	}
	_ = l.Release()
}

func TestPGErrorsNeverShowThePassword(t *testing.T) {
	srv := pgtest.Start(t)
	local := filepath.Join(t.TempDir(), "p.state.db")
	wrong := strings.Replace(srv.ConnStr, srv.Password, srv.Password+"x", 1)
	_, err := OpenPG(PGConfig{ConnStr: wrong}, local, "p", WithOpenTimeout(2*time.Second))
	if err == nil || strings.Contains(err.Error(), srv.Password) {
		t.Fatalf("wrong password: err = %v", err)
	}
	bad := "postgres://flowctl:" + srv.Password + "@127.0.0.1:notaport/db"
	_, err = OpenPG(PGConfig{ConnStr: bad}, local, "p")
	if err == nil || strings.Contains(err.Error(), srv.Password) {
		t.Fatalf("unparsable connection string: err = %v", err)
	}
	s, err := OpenPG(PGConfig{ConnStr: srv.ConnStr}, local, "p")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), srv.Password) || !strings.Contains(s.String(), `"p"`) {
		t.Fatalf("String() = %s", s)
	}
}
