package state

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A kill -9 between bbolt's first pages and flowctl's first transaction
// leaves a bbolt file with no bucket: it holds nothing, so opening it for a
// pipeline creates the state in it, and reading it from the state alone
// says what it is.
func TestAFileLeftUninitialisedIsCreatedNotDamaged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.state.db")
	db, err := bolt.Open(path, FileMode, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, ""); !errors.As(err, new(*DamagedError)) {
		t.Fatalf("open from the state alone: %v, want a DamagedError", err)
	}
	s, err := Open(path, "p")
	if err != nil {
		t.Fatalf("open for pipeline p: %v", err)
	}
	var m Meta
	if err := s.View(func(tx *Tx) error { m = tx.Meta(); return nil }); err != nil {
		t.Fatal(err)
	}
	if m.Pipeline != "p" || m.Lineage == "" {
		t.Fatalf("meta %+v", m)
	}
}
