package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// realState builds a state file the way flowctl fills one: component
// records with specs, history, data namespaces, a lock taken and given
// back, records deleted (so the freelist has pages). It returns the file's
// bytes before and after its last write, and what a reader sees in each.
type realState struct {
	prev, last         []byte
	prevDump, lastDump string
}

var (
	realStateOnce sync.Once
	realStateVal  realState
	realStateErr  error
)

func buildRealState(tb testing.TB) realState {
	tb.Helper()
	realStateOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowctl-state-seed")
		if err != nil {
			realStateErr = err
			return
		}
		defer os.RemoveAll(dir)
		realStateVal, realStateErr = fillRealState(filepath.Join(dir, "p.state.db"))
	})
	if realStateErr != nil {
		tb.Fatal(realStateErr)
	}
	return realStateVal
}

func fillRealState(path string) (realState, error) {
	var out realState
	s, err := Open(path, "p")
	if err != nil {
		return out, err
	}
	spec := json.RawMessage(fmt.Sprintf(`{"command":["/bin/component","--flag"],"env":{"A":%q}}`, strings.Repeat("x", 700)))
	for i := range 40 {
		err := s.Update(func(tx *Tx) error {
			if err := tx.PutComponent(&Record{Address: fmt.Sprintf("source.c%02d", i), Kind: "source", ID: fmt.Sprintf("c%02d", i), Provider: "process",
				SpecHash: fmt.Sprintf("%064d", i), Spec: spec, Handle: json.RawMessage(`{"pid":1234,"start_ticks":99}`), Status: StatusRunning, Ports: map[string]int{"PORT": 4000 + i}}); err != nil {
				return err
			}
			if err := tx.PutData("registry", fmt.Sprintf("c%02d", i), []byte(strings.Repeat("r", 200))); err != nil {
				return err
			}
			return tx.AppendHistory(&Event{Operation: "apply", Address: fmt.Sprintf("source.c%02d", i), Action: "create", Result: "ok"})
		})
		if err != nil {
			return out, err
		}
	}
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
	if err != nil {
		return out, err
	}
	if err := l.Release(); err != nil {
		return out, err
	}
	if err := s.Update(func(tx *Tx) error {
		for i := 0; i < 40; i += 3 {
			if err := tx.DeleteComponent(fmt.Sprintf("source.c%02d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return out, err
	}
	if out.prev, err = os.ReadFile(path); err != nil {
		return out, err
	}
	if out.prevDump, err = dumpState(s); err != nil {
		return out, err
	}
	if err := s.Update(func(tx *Tx) error {
		return tx.PutComponent(&Record{Address: "sink.last", Kind: "sink", ID: "last", Provider: "docker", SpecHash: "h", Status: StatusRunning})
	}); err != nil {
		return out, err
	}
	if out.last, err = os.ReadFile(path); err != nil {
		return out, err
	}
	out.lastDump, err = dumpState(s)
	return out, err
}

// dumpState is everything a plan could read from the file: meta, records,
// data namespaces, the lock.
func dumpState(s *Store) (string, error) {
	var b strings.Builder
	err := s.View(func(tx *Tx) error {
		m := tx.Meta()
		fmt.Fprintf(&b, "%+v\n", m)
		recs, err := tx.Components()
		if err != nil {
			return err
		}
		for _, r := range recs {
			j, _ := json.Marshal(r)
			fmt.Fprintf(&b, "%s\n", j)
		}
		if _, err := tx.History(0); err != nil {
			return err
		}
		for _, ns := range []string{"registry", "tokens"} {
			if err := tx.ForEachData(ns, func(k string, v []byte) error { fmt.Fprintf(&b, "%s/%s=%s\n", ns, k, v); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	l, err := s.LockHolder()
	fmt.Fprintf(&b, "lock %+v\n", l)
	return b.String(), err
}

// openDamaged writes data as a state file and uses it as every command
// would: open, read everything, take the lock, write. It returns what a
// reader saw, or the first error. A panic inside bbolt that the last line
// of defence caught fails the test: each crash path must be closed by the
// checks, not recovered.
func openDamaged(t testing.TB, data []byte) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.state.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dump, err := func() (string, error) {
		s, err := Open(path, "")
		if err != nil {
			return "", err
		}
		dump, err := dumpState(s)
		if err != nil {
			return "", err
		}
		l, err := s.Acquire(context.Background(), LockOptions{Operation: "test"})
		if err != nil {
			return "", err
		}
		if err := l.Release(); err != nil {
			return "", err
		}
		err = s.Update(func(tx *Tx) error {
			return tx.PutComponent(&Record{Address: "sink.new", Kind: "sink", ID: "new", Provider: "process", SpecHash: "n"})
		})
		return dump, err
	}()
	var de *DamagedError
	if err != nil && errors.As(err, &de) {
		if strings.Contains(de.Problem, "reading it failed") {
			t.Fatalf("bbolt crashed on a file the checks let through: %v", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("the error does not name the file: %v", err)
		}
	}
	return dump, err
}

type damage struct {
	name string
	data []byte
	// mustFail: the damage cannot be read around.
	mustFail bool
}

func truncated(data []byte, n int) []byte { return append([]byte(nil), data[:n]...) }

func flipped(data []byte, off int, mask byte) []byte {
	out := append([]byte(nil), data...)
	out[off] ^= mask
	return out
}

// damages are the seeds: the file truncated at every page boundary and at
// the sizes of issue 13, and bytes flipped in both meta pages, the root
// bucket's page and the freelist page.
func damages(tb testing.TB) []damage {
	rs := buildRealState(tb)
	data := rs.last
	m, err := chooseMeta(data)
	if err != nil {
		tb.Fatal(err)
	}
	ps := int(m.pageSize)
	used := int(m.hwm) * ps
	var out []damage
	for n := 0; n < len(data); n += ps {
		out = append(out, damage{fmt.Sprintf("truncated to %d", n), truncated(data, n), n < used})
	}
	for _, n := range []int{8 << 10, 20_000, 40_000} {
		if n < len(data) {
			out = append(out, damage{fmt.Sprintf("truncated to %d", n), truncated(data, n), n < used})
		}
	}
	for page, what := range map[int]string{0: "meta 0", 1: "meta 1"} {
		for off := 0; off < 96; off += 3 {
			out = append(out, damage{fmt.Sprintf("%s byte %d flipped", what, off), flipped(data, page*ps+off, 0x10), false})
		}
	}
	bothMetas := flipped(flipped(data, 16, 0xff), ps+16, 0xff)
	out = append(out, damage{"both meta pages' magic flipped", bothMetas, true})
	for _, pg := range []struct {
		name string
		id   uint64
	}{{"root", m.root}, {"freelist", m.freelist}} {
		for off := 0; off < ps; off += 37 {
			for _, mask := range []byte{0x01, 0x80} {
				out = append(out, damage{fmt.Sprintf("%s page byte %d ^%#x", pg.name, off, mask), flipped(data, int(pg.id)*ps+off, mask), off < 16 && off != 14 && off != 15})
			}
		}
	}
	for off := 2 * ps; off < len(data); off += 2039 {
		out = append(out, damage{fmt.Sprintf("byte %d flipped", off), flipped(data, off, 0x04), false})
	}
	out = append(out, damage{"empty", nil, true})
	return out
}

// TestDamagedStateFilesFailCleanly opens each seed: a damaged file is a
// *DamagedError that names the file, never a panic, and a file that opens
// reads exactly as flowctl wrote it (its last version, or the one before
// when a meta page was lost), never silently changed.
func TestDamagedStateFilesFailCleanly(t *testing.T) {
	rs := buildRealState(t)
	if dump, err := openDamaged(t, rs.last); err != nil || dump != rs.lastDump {
		t.Fatalf("the undamaged file: err = %v, same = %v", err, dump == rs.lastDump)
	}
	failed := 0
	ds := damages(t)
	for _, d := range ds {
		dump, err := openDamaged(t, d.data)
		var de *DamagedError
		switch {
		case err != nil && !errors.As(err, &de):
			t.Errorf("%s: not a DamagedError: %v", d.name, err)
		case err != nil:
			failed++
		case d.mustFail:
			t.Errorf("%s: opened without error", d.name)
		case dump != rs.lastDump && dump != rs.prevDump:
			t.Errorf("%s: opened, and reads differently:\n%s\nwant:\n%s", d.name, dump, rs.lastDump)
		}
	}
	t.Logf("%d damaged files, %d refused", len(ds), failed)
}

func TestTruncatedStateFileNamesTheTruncation(t *testing.T) {
	rs := buildRealState(t)
	_, err := openDamaged(t, truncated(rs.last, 20_000))
	if err == nil || !strings.Contains(err.Error(), "the file is truncated: it is 20000 bytes") {
		t.Fatalf("err = %v", err)
	}
}

func TestFlippedRecordByteIsCaughtByTheChecksum(t *testing.T) {
	rs := buildRealState(t)
	i := strings.Index(string(rs.last), `"spec_hash":"00000000`)
	if i < 0 {
		t.Fatal("no record found in the file")
	}
	_, err := openDamaged(t, flipped(rs.last, i+14, 0x01)) // '0' -> '1'
	if err == nil || !strings.Contains(err.Error(), "checksum of its records does not match") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmptyStateFileWithoutPipelineIsDamaged(t *testing.T) {
	_, err := openDamaged(t, nil)
	var de *DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "empty (0 bytes)") {
		t.Fatalf("err = %v", err)
	}
}

func TestFreshCheckRefusesAndNothingIsWritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var why string
	_, err := Open(path, "p", WithFreshCheck(func(w string) error { why = w; return errors.New("components run") }))
	if err == nil || why != "is empty (0 bytes)" {
		t.Fatalf("err = %v, why = %q", err, why)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatalf("the empty file was written: %d bytes", fi.Size())
	}
	s, err := Open(path, "p", WithFreshCheck(func(string) error { return nil }))
	if err != nil || !s.Created() {
		t.Fatalf("err = %v, created = %v", err, s != nil && s.Created())
	}
	missing := filepath.Join(dir, "sub", "q.state.db")
	if _, err := Open(missing, "q", WithFreshCheck(func(w string) error { why = w; return errors.New("no") })); err == nil || why != "does not exist" {
		t.Fatalf("err = %v, why = %q", err, why)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the missing file was created: %v", err)
	}
}

func TestReadOnlyStoreReadsAnUnwritableFileAndRefusesWrites(t *testing.T) {
	s := newStore(t)
	if err := s.Update(func(tx *Tx) error { return tx.PutComponent(&Record{Address: "source.a", SpecHash: "h"}) }); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.Path())
	if err := os.Chmod(s.Path(), 0o400); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(s.Path(), "p", ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	want := meta(t, s)
	if got := meta(t, ro); !reflect.DeepEqual(got, want) {
		t.Fatalf("meta = %+v, want %+v", got, want)
	}
	if _, err := ro.LockHolder(); err != nil {
		t.Fatal(err)
	}
	if err := ro.Update(func(tx *Tx) error { return nil }); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("update on a read-only store: %v", err)
	}
	after, _ := os.ReadFile(s.Path())
	if string(before) != string(after) {
		t.Fatal("a read-only store changed the file")
	}
}

func TestBackupKeepsThePreviousVersion(t *testing.T) {
	s := newStore(t)
	put := func(addr string) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.PutComponent(&Record{Address: addr, SpecHash: "h"}) }); err != nil {
			t.Fatal(err)
		}
	}
	put("source.a")
	put("source.b")
	fi, err := os.Stat(BackupPath(s.Path()))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup: %v %v", fi, err)
	}
	b, err := Open(BackupPath(s.Path()), "")
	if err != nil {
		t.Fatal(err)
	}
	if m := meta(t, b); m.Serial != meta(t, s).Serial-1 || m.Lineage != meta(t, s).Lineage {
		t.Fatalf("backup meta %+v, state %+v", m, meta(t, s))
	}
	// A write that does not move the serial leaves the backup alone.
	bb, _ := os.ReadFile(BackupPath(s.Path()))
	if err := s.Update(func(tx *Tx) error { return tx.AppendHistory(&Event{Operation: "x"}) }); err != nil {
		t.Fatal(err)
	}
	if ba, _ := os.ReadFile(BackupPath(s.Path())); string(ba) != string(bb) {
		t.Fatal("the backup changed on a write that kept the serial")
	}
}

// FuzzOpenState opens corrupted files: never a panic, always a clean
// error. Its seeds are a quarter of damages (TestDamagedStateFilesFailCleanly
// runs them all).
func FuzzOpenState(f *testing.F) {
	for i, d := range damages(f) {
		if i%4 == 0 || d.mustFail {
			f.Add(d.data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := openDamaged(t, data)
		var de *DamagedError
		if err != nil && !errors.As(err, &de) && !strings.Contains(err.Error(), "newer than this flowctl") {
			t.Fatalf("not a DamagedError: %v", err)
		}
	})
}

func TestBackupIsTheStateBeforeTheOperation(t *testing.T) {
	s := newStore(t)
	put := func(addr string) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.PutComponent(&Record{Address: addr, SpecHash: "h"}) }); err != nil {
			t.Fatal(err)
		}
	}
	put("source.a")
	before := meta(t, s).Serial
	l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
	if err != nil {
		t.Fatal(err)
	}
	put("source.b")
	put("source.c")
	put("source.d")
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(BackupPath(s.Path()), "", ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	if m := meta(t, b); m.Serial != before {
		t.Fatalf("backup serial %d, want %d (the state before the locked operation)", m.Serial, before)
	}
}
