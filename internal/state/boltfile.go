package state

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// boltFile is the backend of a state file: the Store's own file methods
// (open, checks, backups), with the operation lock in the bucket "lock".
type boltFile struct{ s *Store }

func (b boltFile) update(fn func(kv) error) error {
	return b.s.update(func(tx *bolt.Tx, ch *changes) error { return fn(boltKV{tx, ch}) })
}

func (b boltFile) view(fn func(kv) error) error {
	return b.s.view(func(tx *bolt.Tx) error { return fn(boltKV{tx, nil}) })
}

func (b boltFile) describe() string { return "state file " + b.s.path }

func (b boltFile) location() string { return b.s.path }

// sessionLock: the file's lock is an entry in the file, broken by the next
// holder when its process is gone.
func (boltFile) sessionLock() bool { return false }

func (b boltFile) close() error { return nil }

// tryLock writes info as the lock unless a live holder has it. A holder
// that ran on this host and no longer exists (its pid and start time are
// gone) is replaced, and returned as broken.
func (b boltFile) tryLock(info LockInfo) (holder, broken *LockInfo, release func() error, err error) {
	err = b.s.update(func(tx *bolt.Tx, _ *changes) error {
		bk := tx.Bucket(bucketLock)
		if v := bk.Get(keyLock); v != nil {
			var cur LockInfo
			if err := json.Unmarshal(v, &cur); err != nil {
				return fmt.Errorf("decode lock: %w", err)
			}
			if cur.Host != info.Host || procinfo.Alive(procinfo.Identity{PID: cur.PID, StartTicks: cur.StartTicks}) {
				holder = &cur
				return nil
			}
			broken = &cur
		}
		v, err := json.Marshal(info)
		if err != nil {
			return err
		}
		return bk.Put(keyLock, v)
	})
	if err != nil || holder != nil {
		return holder, nil, nil, err
	}
	return nil, broken, func() error { return b.release(info.ID) }, nil
}

// release removes the lock if it is still id's: one force-unlocked and
// taken by someone else is left alone.
func (b boltFile) release(id string) error {
	return b.s.update(func(tx *bolt.Tx, _ *changes) error {
		bk := tx.Bucket(bucketLock)
		v := bk.Get(keyLock)
		if v == nil {
			return nil
		}
		var cur LockInfo
		if err := json.Unmarshal(v, &cur); err != nil {
			return fmt.Errorf("decode lock: %w", err)
		}
		if cur.ID != id {
			return nil
		}
		return bk.Delete(keyLock)
	})
}

func (b boltFile) lockHolder() (*LockInfo, error) {
	var out *LockInfo
	err := b.s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLock).Get(keyLock)
		if v == nil {
			return nil
		}
		out = &LockInfo{}
		return json.Unmarshal(v, out)
	})
	return out, err
}

func (b boltFile) forceUnlock(s *Store, id string) (*LockInfo, error) {
	var removed *LockInfo
	err := s.Update(func(tx *Tx) error {
		v := tx.kv.get(bkLock, keyLock)
		if v == nil {
			return errors.New("the state is not locked")
		}
		var cur LockInfo
		if err := json.Unmarshal(v, &cur); err != nil {
			return fmt.Errorf("decode lock: %w", err)
		}
		if cur.ID != id {
			return fmt.Errorf("%w: the lock is held by %s", ErrLockMismatch, cur.String())
		}
		removed = &cur
		if err := tx.kv.del(bkLock, keyLock); err != nil {
			return err
		}
		return tx.AppendHistory(&Event{Operation: "force-unlock", Detail: "removed lock of " + cur.String()})
	})
	return removed, err
}
