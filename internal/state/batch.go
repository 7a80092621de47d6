package state

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// batchCall is one Batch call waiting for its commit.
type batchCall struct {
	fn   func(tx *Tx) error
	done chan error
}

// errBatchMember aborts a batch transaction in which one call failed.
var errBatchMember = errors.New("a call of the batch failed")

// Batch is Update for goroutines that write at the same time: the calls
// waiting while another transaction holds the file are committed together,
// in one transaction, with one file open and one sync instead of one each
// (the ten components of an apply level recording their starts would
// otherwise queue for ten syncs). Each fn still commits entirely or not at
// all, and the serial moves as if each had run alone. In exchange fn may
// run more than once — when another call of its batch fails, the batch is
// rolled back and run again without it — so fn must have no effect outside
// tx, or only effects that are the same when repeated.
func (s *Store) Batch(fn func(tx *Tx) error) error {
	if s.file == nil {
		// A database serialises its own writers, without a file to share.
		return s.Update(fn)
	}
	c := &batchCall{fn: fn, done: make(chan error, 1)}
	f := s.file
	f.batchMu.Lock()
	f.batch = append(f.batch, c)
	f.batchMu.Unlock()
	// Whoever gets the file next commits every call queued by then: this
	// one, or a batch that already took it.
	f.mu.Lock()
	f.batchMu.Lock()
	calls := f.batch
	f.batch = nil
	f.batchMu.Unlock()
	s.commit(calls)
	f.mu.Unlock()
	return <-c.done
}

// commit runs calls in one transaction and tells each how it went. A call
// that fails is told its own error, from a run of its own; the others run
// again together. The caller holds s.file.mu.
func (s *Store) commit(calls []*batchCall) {
	for len(calls) > 0 {
		failed := -1
		err := s.updateLocked(func(btx *bolt.Tx, ch *changes) error {
			for i, c := range calls {
				if err := s.run(boltKV{btx, ch}, c.fn); err != nil {
					failed = i
					return errBatchMember
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range calls {
				c.done <- err
			}
			return
		}
		c := calls[failed]
		c.done <- s.updateLocked(func(btx *bolt.Tx, ch *changes) error { return s.run(boltKV{btx, ch}, c.fn) })
		calls = append(calls[:failed:failed], calls[failed+1:]...)
	}
}
