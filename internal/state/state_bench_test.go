package state

import (
	"fmt"
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
