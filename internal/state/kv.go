package state

import (
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The state is kept by a backend: a bbolt file (the default) or a
// PostgreSQL database. Tx reads and writes through kv, a transaction of
// named buckets of keys in byte order, so the records, history and data a
// Tx understands look the same on either.
//
// Buckets: "meta", "components", "history", "lock" (the file's operation
// lock), and "data/<namespace>" for each data namespace.

// kv is one transaction of a backend. Reads of a backend that can fail
// (a database) keep their first error, and the transaction fails with it.
type kv interface {
	get(bucket string, key []byte) []byte
	put(bucket string, key, value []byte) error
	del(bucket string, key []byte) error
	// forEach calls fn for every key of bucket, in key order.
	forEach(bucket string, fn func(k, v []byte) error) error
	// last calls fn for the last n keys of bucket (all when n <= 0), the
	// last one first; an error from fn ends the walk.
	last(bucket string, n int, fn func(k, v []byte) error) error
	// nextSequence returns the next number of bucket's sequence (1, 2, …).
	nextSequence(bucket string) (uint64, error)
	// setSequence sets bucket's sequence (a state being migrated).
	setSequence(bucket string, n uint64) error
	// dataBuckets lists the data namespaces' buckets ("data/<ns>").
	dataBuckets() ([]string, error)
}

// backend keeps one state.
type backend interface {
	// update runs fn in one read-write transaction: everything it wrote is
	// committed when it returns nil, nothing when it returns an error.
	update(fn func(kv) error) error
	// view runs fn in a read-only transaction.
	view(fn func(kv) error) error
	// tryLock takes the operation lock for info once, without waiting. It
	// returns the live holder when another has it, or the lock's release
	// and the record of a dead holder it replaced (nil when none).
	tryLock(info LockInfo) (holder, broken *LockInfo, release func() error, err error)
	lockHolder() (*LockInfo, error)
	forceUnlock(s *Store, id string) (*LockInfo, error)
	// describe names the state in messages, without secrets.
	describe() string
	// location names the state for a person (status): a path, or a database
	// workspace; never a password.
	location() string
	// sessionLock reports whether the operation lock ends with its
	// holder's session (so a dead holder never needs force-unlock).
	sessionLock() bool
	close() error
}

const (
	bkMeta       = "meta"
	bkComponents = "components"
	bkHistory    = "history"
	bkLock       = "lock"
	bkDataPrefix = "data/"
)

// boltKV is a kv over a bbolt transaction; "data/<ns>" is the bucket ns
// nested in the bucket "data". A write transaction's boltKV notes in ch
// every entry of the sealed buckets it is about to change (see seal).
type boltKV struct {
	tx *bolt.Tx
	ch *changes
}

func (b boltKV) bucket(name string, create bool) (*bolt.Bucket, error) {
	top, sub, nested := strings.Cut(name, "/")
	bk := b.tx.Bucket([]byte(top))
	if !nested || bk == nil {
		return bk, nil
	}
	if create {
		if bk.Bucket([]byte(sub)) == nil {
			b.ch.note(top, []byte(sub))
		}
		return bk.CreateBucketIfNotExists([]byte(sub))
	}
	return bk.Bucket([]byte(sub)), nil
}

func (b boltKV) get(bucket string, key []byte) []byte {
	bk, _ := b.bucket(bucket, false)
	if bk == nil {
		return nil
	}
	return bk.Get(key)
}

func (b boltKV) put(bucket string, key, value []byte) error {
	bk, err := b.bucket(bucket, true)
	if err != nil {
		return err
	}
	b.ch.note(bucket, key)
	return bk.Put(key, value)
}

func (b boltKV) del(bucket string, key []byte) error {
	bk, _ := b.bucket(bucket, false)
	if bk == nil {
		return nil
	}
	b.ch.note(bucket, key)
	return bk.Delete(key)
}

func (b boltKV) forEach(bucket string, fn func(k, v []byte) error) error {
	bk, _ := b.bucket(bucket, false)
	if bk == nil {
		return nil
	}
	return bk.ForEach(fn)
}

func (b boltKV) last(bucket string, n int, fn func(k, v []byte) error) error {
	bk, _ := b.bucket(bucket, false)
	if bk == nil {
		return nil
	}
	c := bk.Cursor()
	i := 0
	for k, v := c.Last(); k != nil && (n <= 0 || i < n); k, v = c.Prev() {
		if err := fn(k, v); err != nil {
			return err
		}
		i++
	}
	return nil
}

func (b boltKV) setSequence(bucket string, n uint64) error {
	bk, err := b.bucket(bucket, true)
	if err != nil {
		return err
	}
	return bk.SetSequence(n)
}

func (b boltKV) dataBuckets() ([]string, error) {
	var out []string
	err := b.tx.Bucket(bucketData).ForEach(func(k, v []byte) error {
		if v == nil {
			out = append(out, bkDataPrefix+string(k))
		}
		return nil
	})
	return out, err
}

func (b boltKV) nextSequence(bucket string) (uint64, error) {
	bk, err := b.bucket(bucket, true)
	if err != nil {
		return 0, err
	}
	return bk.NextSequence()
}
