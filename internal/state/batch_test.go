package state

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestBatchCommitsEachCallAsIfAlone(t *testing.T) {
	s := newStore(t)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 30)
	for i := range 30 {
		wg.Go(func() {
			errs[i] = s.Batch(func(tx *Tx) error {
				if err := tx.PutComponent(&Record{Address: fmt.Sprintf("source.c%d", i), SpecHash: "h"}); err != nil {
					return err
				}
				if i%10 == 3 {
					return boom // nothing of this call may be committed
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if want := i%10 == 3; (err != nil) != want || err != nil && !errors.Is(err, boom) {
			t.Errorf("call %d: %v", i, err)
		}
	}
	var n int
	_ = s.View(func(tx *Tx) error { recs, err := tx.Components(); n = len(recs); return err })
	if n != 27 || meta(t, s).Serial != 27 {
		t.Fatalf("records = %d, serial = %d; want 27 and 27", n, meta(t, s).Serial)
	}
}
