package state

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkConcurrentUpdates is one level of an apply as the state sees it:
// ten components recording their starts at once, each in a transaction of
// its own (Update) or in whatever batch it joins (Batch). An op is the ten
// writes.
func BenchmarkConcurrentUpdates(b *testing.B) {
	for _, mode := range []string{"Update", "Batch"} {
		b.Run(mode, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "p.state.db"), "p")
			if err != nil {
				b.Fatal(err)
			}
			write := s.Update
			if mode == "Batch" {
				write = s.Batch
			}
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range 10 {
					wg.Go(func() {
						err := write(func(tx *Tx) error {
							return tx.PutComponent(&Record{Address: fmt.Sprintf("source.c%d", i), SpecHash: "h", Status: StatusCreating})
						})
						if err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
		})
	}
}

// BenchmarkCheckFile is what opening a state file this process has not
// checked yet costs on top of bbolt: the page walk (verifyBolt) and the
// invariants with the checksum, on a file of 27 component records, 40
// history events and 40 data entries.
func BenchmarkCheckFile(b *testing.B) {
	rs := buildRealState(b)
	path := filepath.Join(b.TempDir(), "p.state.db")
	if err := os.WriteFile(path, rs.last, 0o600); err != nil {
		b.Fatal(err)
	}
	s, err := Open(path, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pages", func(b *testing.B) {
		for b.Loop() {
			if err := verifyBolt(rs.last); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open-unchecked", func(b *testing.B) {
		for b.Loop() {
			s.markChecked(fileVersion{})
			if err := s.View(func(*Tx) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open-checked", func(b *testing.B) {
		for b.Loop() {
			if err := s.View(func(*Tx) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
