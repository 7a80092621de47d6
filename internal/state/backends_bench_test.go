package state

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/flowctl/flowctl/internal/testutil/pgtest"
)

// benchBackends opens a fresh state of pipeline p on each backend: the file
// and a real PostgreSQL server on loopback, in the same run.
func benchBackends(b *testing.B) map[string]*Store {
	srv := pgtest.StartWith(b, pgtest.Options{Durable: true}) // fsync on, as the file has it
	f, err := Open(filepath.Join(b.TempDir(), "p.state.db"), "p")
	if err != nil {
		b.Fatal(err)
	}
	pg, err := OpenPG(PGConfig{ConnStr: srv.ConnStr}, filepath.Join(b.TempDir(), "p.state.db"), "p")
	if err != nil {
		b.Fatal(err)
	}
	return map[string]*Store{"file": f, "pg": pg}
}

// BenchmarkLockAcquireRelease is the operation lock of one command: taken,
// then given back.
func BenchmarkLockAcquireRelease(b *testing.B) {
	for name, s := range benchBackends(b) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				l, err := s.Acquire(context.Background(), LockOptions{Operation: "apply"})
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Release(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCommandSizedState is what a plan and an apply of a ten-component
// pipeline ask of the state: a plan reads the meta and every record; an
// apply writes each record twice (started, then running) with a history
// event each.
func BenchmarkCommandSizedState(b *testing.B) {
	for name, s := range benchBackends(b) {
		b.Run(name+"/apply", func(b *testing.B) {
			n := 0
			for b.Loop() {
				n++
				for _, status := range []string{StatusCreating, StatusRunning} {
					for i := range 10 {
						err := s.Update(func(tx *Tx) error {
							r := &Record{Address: fmt.Sprintf("source.c%d", i), SpecHash: fmt.Sprint(n), Status: status}
							if err := tx.PutComponent(r); err != nil {
								return err
							}
							return tx.AppendHistory(&Event{Operation: "apply", Address: r.Address, Result: status})
						})
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		})
		b.Run(name+"/plan", func(b *testing.B) {
			for b.Loop() {
				err := s.View(func(tx *Tx) error {
					_ = tx.Meta()
					_, err := tx.Components()
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
