package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// BenchmarkUpdateOneOfMany is one start recorded in the state of a large
// pipeline: an Update of one component record among n, each record the
// size of a process component's (a spec, a handle, ports). The seal's cost
// grows with n when it hashes every record, not when it hashes the change.
func BenchmarkUpdateOneOfMany(b *testing.B) {
	spec := []byte(fmt.Sprintf(`{"command":["sleep","1000000"],"env":{"A":%q}}`, strings.Repeat("x", 600)))
	for _, n := range []int{100, 1000, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "p.state.db"), "p")
			if err != nil {
				b.Fatal(err)
			}
			rec := func(i int) *Record {
				return &Record{Address: fmt.Sprintf("source.c%04d", i), Kind: "source", ID: fmt.Sprintf("c%04d", i), Provider: "process",
					SpecHash: fmt.Sprintf("%064d", i), Spec: spec, Handle: []byte(`{"pid":1234,"start_ticks":99,"shim_pid":1233}`),
					Status: StatusRunning, Ports: map[string]int{"PORT": 4000 + i}}
			}
			if err := s.Update(func(tx *Tx) error {
				for i := range n {
					if err := tx.PutComponent(rec(i)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				r := rec(i % n)
				r.Status = StatusCreating
				if err := s.Update(func(tx *Tx) error { return tx.PutComponent(r) }); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
