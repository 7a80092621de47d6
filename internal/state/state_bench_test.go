package state

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkConcurrentUpdates is one level of an apply as the state sees it:
// ten components recording their starts at once, each in a transaction of
// its own. An op is the ten transactions.
func BenchmarkConcurrentUpdates(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "p.state.db"), "p")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				err := s.Update(func(tx *Tx) error {
					return tx.PutComponent(&Record{Address: fmt.Sprintf("source.c%d", i), SpecHash: "h", Status: StatusCreating})
				})
				if err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
}
