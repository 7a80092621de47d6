package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// storedAndFull reads the file's seal and computes it afresh from every
// record.
func storedAndFull(t *testing.T, path string) (stored, full string) {
	t.Helper()
	db, err := bolt.Open(path, FileMode, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		stored = string(tx.Bucket(bucketMeta).Get(keySum))
		full = sealOf(tx, recordsSum(tx))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return stored, full
}

func TestIncrementalSealIsTheSealOfEveryRecord(t *testing.T) {
	s := newStore(t)
	check := func(step string) {
		t.Helper()
		stored, full := storedAndFull(t, s.Path())
		if !strings.HasPrefix(stored, sealPrefix) || stored != full {
			t.Fatalf("after %s: stored seal %q, computed from every record %q", step, stored, full)
		}
	}
	check("create")
	rec := func(i int, status string) *Record {
		return &Record{Address: fmt.Sprintf("source.c%d", i), Kind: "source", ID: fmt.Sprintf("c%d", i), Provider: "process",
			SpecHash: fmt.Sprintf("%064d", i), Spec: json.RawMessage(`{"command":["sleep","1"]}`), Status: status}
	}
	for i := range 5 {
		if err := s.Update(func(tx *Tx) error { return tx.PutComponent(rec(i, StatusCreating)) }); err != nil {
			t.Fatal(err)
		}
	}
	check("puts")
	// The same record written twice in one transaction, another deleted,
	// data namespaces created, written and emptied.
	if err := s.Update(func(tx *Tx) error {
		for _, st := range []string{StatusCreating, StatusRunning} {
			if err := tx.PutComponent(rec(1, st)); err != nil {
				return err
			}
		}
		if err := tx.DeleteComponent("source.c2"); err != nil {
			return err
		}
		if err := tx.AppendHistory(&Event{Operation: "apply", Address: "source.c1", Result: "ok"}); err != nil {
			return err
		}
		if err := tx.PutData("ns1", "k", []byte("v1")); err != nil {
			return err
		}
		if err := tx.PutData("ns1", "k", []byte("v2")); err != nil {
			return err
		}
		return tx.PutData("ns2", "a", []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	check("a mixed transaction")
	if err := s.Update(func(tx *Tx) error { return tx.DeleteData("ns2", "a") }); err != nil {
		t.Fatal(err)
	}
	check("a data delete")
	if err := s.Update(func(tx *Tx) error {
		evs, err := tx.History(1)
		if err != nil || len(evs) != 1 {
			return fmt.Errorf("history: %v, %d events", err, len(evs))
		}
		evs[0].Result = "failed"
		return tx.AmendHistory(evs[0])
	}); err != nil {
		t.Fatal(err)
	}
	check("a history event amended")
	// A batch, one of whose calls fails (rolled back and run again).
	var wg sync.WaitGroup
	for i := 10; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Batch(func(tx *Tx) error {
				if i%7 == 0 {
					if err := tx.PutComponent(rec(i, StatusRunning)); err != nil {
						return err
					}
					return fmt.Errorf("fails after writing")
				}
				return tx.PutComponent(rec(i, StatusRunning))
			})
		}()
	}
	wg.Wait()
	check("a batch with failures")
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "test"})
	if err != nil {
		t.Fatal(err)
	}
	check("the lock taken")
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	check("the lock released")
	// Another process's view: the file reopened from scratch passes.
	if _, err := dumpState(reopened(t, s.Path())); err != nil {
		t.Fatal(err)
	}
}

// reopened is a Store of path that shares nothing with this process's
// earlier ones: it checks the file as a new process would.
func reopened(t *testing.T, path string) *Store {
	t.Helper()
	files.Delete(path)
	s, err := Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAFileSealedTheOldWayOpensAndIsSealedTheNewWay(t *testing.T) {
	s := newStore(t)
	if err := s.Update(func(tx *Tx) error {
		return tx.PutComponent(&Record{Address: "source.a", Kind: "source", ID: "a", Provider: "process", SpecHash: "h"})
	}); err != nil {
		t.Fatal(err)
	}
	// Seal it as flowctl did before the sum.
	reseal := func(damage bool) {
		db, err := bolt.Open(s.Path(), FileMode, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Put(keySum, []byte(legacyChecksum(tx))); err != nil {
				return err
			}
			if damage {
				return tx.Bucket(bucketComponents).Put([]byte("source.a"), []byte(`{"address":"source.a","kind":"source","id":"b"}`))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	reseal(false)
	if stored, _ := storedAndFull(t, s.Path()); strings.HasPrefix(stored, sealPrefix) || len(stored) != 64 {
		t.Fatalf("the legacy seal was not written: %q", stored)
	}
	old := reopened(t, s.Path())
	if _, err := dumpState(old); err != nil {
		t.Fatalf("a file sealed the old way does not open: %v", err)
	}
	if err := old.Update(func(tx *Tx) error { return tx.PutData("ns", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if stored, full := storedAndFull(t, s.Path()); !strings.HasPrefix(stored, sealPrefix) || stored != full {
		t.Fatalf("after a write: stored seal %q, want the new form %q", stored, full)
	}
	// A record changed under a legacy seal is still refused.
	reseal(true)
	files.Delete(s.Path())
	if _, err := Open(s.Path(), ""); err == nil || !strings.Contains(err.Error(), "checksum of its records does not match") {
		t.Fatalf("a record changed under the old seal: err = %v", err)
	}
}

func TestARecordChangedUnderTheNewSealIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bucket []byte
		key    string
		value  string
	}{
		{"a record's byte", bucketComponents, "source.a", `{"address":"source.a","kind":"source","id":"A","provider":"process","spec_hash":"h"}`},
		{"a record added", bucketComponents, "source.z", `{"address":"source.z","kind":"source","id":"z"}`},
		{"a record removed", bucketComponents, "source.a", ""},
		{"the lock written", bucketLock, "holder", `{}`},
		{"a history event's byte", bucketHistory, "\x00\x00\x00\x00\x00\x00\x00\x01", `{"seq":1,"operation":"apply","address":"source.b","result":"ok"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if err := s.Update(func(tx *Tx) error {
				if err := tx.AppendHistory(&Event{Operation: "apply", Address: "source.a", Result: "ok"}); err != nil {
					return err
				}
				return tx.PutComponent(&Record{Address: "source.a", Kind: "source", ID: "a", Provider: "process", SpecHash: "h"})
			}); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(s.Path(), FileMode, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				if tc.value == "" {
					return tx.Bucket(tc.bucket).Delete([]byte(tc.key))
				}
				return tx.Bucket(tc.bucket).Put([]byte(tc.key), []byte(tc.value))
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			files.Delete(s.Path())
			if _, err := Open(s.Path(), ""); err == nil || !strings.Contains(err.Error(), "checksum of its records does not match") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
