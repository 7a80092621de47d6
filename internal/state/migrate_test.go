package state

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/testutil/pgtest"
)

// content is what a state holds, for comparing two.
func content(t *testing.T, s *Store) (Meta, []*Record, []*Event, map[string]string) {
	t.Helper()
	var m Meta
	var recs []*Record
	var hist []*Event
	data := map[string]string{}
	err := s.View(func(tx *Tx) error {
		m = tx.Meta()
		var err error
		if recs, err = tx.Components(); err != nil {
			return err
		}
		if hist, err = tx.History(0); err != nil {
			return err
		}
		names, err := tx.kv.dataBuckets()
		for _, n := range names {
			if n == bkDataPrefix+keysNamespace {
				continue // compared on their own
			}
			ns := strings.TrimPrefix(n, bkDataPrefix)
			_ = tx.ForEachData(ns, func(k string, v []byte) error { data[ns+"/"+k] = string(v); return nil })
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, recs, hist, data
}

func TestMigrateFileToPGAndBackKeepsLineageSerialAndHistory(t *testing.T) {
	srv := pgtest.Start(t)
	dir := t.TempDir()
	file := Location{Path: filepath.Join(dir, ".flowctl", "p.state.db")}
	pg := Location{Path: file.Path, PG: &PGConfig{ConnStr: srv.ConnStr, Schema: "mig"}}
	back := Location{Path: filepath.Join(dir, "back", "p.state.db")}

	s, err := OpenAt(file, "p")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		err := s.Update(func(tx *Tx) error {
			if err := tx.PutComponent(&Record{Address: fmt.Sprintf("source.c%d", i), SpecHash: "h", Status: StatusRunning}); err != nil {
				return err
			}
			if err := tx.PutData("registry", fmt.Sprint(i), []byte{byte(i)}); err != nil {
				return err
			}
			return tx.AppendHistory(&Event{Operation: "apply", Address: fmt.Sprintf("source.c%d", i)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(func(tx *Tx) error { _, err := tx.BumpTokenGeneration(); return err }); err != nil {
		t.Fatal(err)
	}
	wantMeta, wantRecs, wantHist, wantData := content(t, s)
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(filepath.Join(dir, ".flowctl", "spec-hash-key"), key, 0o600); err != nil {
		t.Fatal(err)
	}

	m, err := Migrate(context.Background(), file, pg, "p")
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta.Lineage != wantMeta.Lineage || m.Components != 3 || m.Events != 3 || strings.Contains(m.To, srv.Password) {
		t.Fatalf("migrated = %+v", m)
	}
	if _, err := Migrate(context.Background(), file, pg, "p"); err == nil || !strings.Contains(err.Error(), "already holds a state") {
		t.Fatalf("a second migration over the first: err = %v", err)
	}
	if _, err := Migrate(context.Background(), pg, back, "p"); err != nil {
		t.Fatal(err)
	}
	for _, loc := range []Location{pg, back} {
		st, err := OpenAt(loc, "p")
		if err != nil {
			t.Fatal(err)
		}
		// The spec hash key went along: into the database, and from it
		// into a file beside the state file.
		var got []byte
		if loc.PG != nil {
			got, err = st.SharedKey("spec-hash-key", false)
		} else {
			got, err = os.ReadFile(filepath.Join(filepath.Dir(loc.Path), "spec-hash-key"))
		}
		if err != nil || string(got) != string(key) {
			t.Fatalf("%s: spec hash key %q, %v", st, got, err)
		}
		gotMeta, gotRecs, gotHist, gotData := content(t, st)
		if gotMeta != wantMeta || !reflect.DeepEqual(gotRecs, wantRecs) || !reflect.DeepEqual(gotHist, wantHist) || !reflect.DeepEqual(gotData, wantData) {
			t.Fatalf("%s differs from the source:\nmeta %+v\nwant %+v\ndata %v want %v", st, gotMeta, wantMeta, gotData, wantData)
		}
		// The history goes on from where it was.
		if err := st.Update(func(tx *Tx) error { return tx.AppendHistory(&Event{Operation: "apply"}) }); err != nil {
			t.Fatal(err)
		}
		var last []*Event
		_ = st.View(func(tx *Tx) error { last, err = tx.History(1); return err })
		if len(last) != 1 || last[0].Seq != 4 {
			t.Fatalf("%s: next event = %+v, want seq 4", st, last)
		}
	}
	// The source is left as it was, and unlocked.
	if h, _ := s.LockHolder(); h != nil {
		t.Fatalf("the source is still locked by %v", h)
	}
	if got, _, _, _ := content(t, s); got != wantMeta {
		t.Fatalf("the source changed: %+v", got)
	}
}
