package state

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
)

// keysNamespace is the data namespace of the keys a state shares with
// every machine that uses it (SharedKey).
const keysNamespace = "keys"

// sharedKeySize is the size of a key SharedKey creates.
const sharedKeySize = 32

// SharedKey returns the key name the state keeps for every machine that
// reaches it (a database's state is used from several), creating it with
// random bytes when create and there is none; nil when there is none. The
// key is as safe as the state: whoever may read the database may read it.
func (s *Store) SharedKey(name string, create bool) ([]byte, error) {
	var key []byte
	err := s.View(func(tx *Tx) error { key = tx.GetData(keysNamespace, name); return nil })
	if err != nil || len(key) > 0 || !create {
		return key, err
	}
	fresh := make([]byte, sharedKeySize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("generate %s: %w", name, err)
	}
	err = s.Update(func(tx *Tx) error {
		if key = tx.GetData(keysNamespace, name); len(key) > 0 {
			return nil // another process made it first
		}
		key = fresh
		return tx.PutData(keysNamespace, name, fresh)
	})
	return key, err
}

// localKeyFiles are the keys a file state keeps beside it, in files of
// these names, and a database's state in SharedKey: Migrate moves them.
// "spec-hash-key" is config.SpecKeyFileName.
var localKeyFiles = []string{"spec-hash-key"}

// moveKeys carries the keys of a file state into a database's (SharedKey),
// or a database's into files beside a file state, leaving any key the
// destination already has.
func moveKeys(src, dst *Store) error {
	for _, name := range localKeyFiles {
		var key []byte
		if src.loc.PG == nil {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(src.path), name))
			if err != nil {
				continue // no key: nothing was hashed with one
			}
			key = b
		} else {
			var err error
			if key, err = src.SharedKey(name, false); err != nil {
				return err
			}
		}
		if len(key) == 0 {
			continue
		}
		if dst.loc.PG != nil {
			if err := dst.Update(func(tx *Tx) error {
				if len(tx.GetData(keysNamespace, name)) > 0 {
					return nil
				}
				return tx.PutData(keysNamespace, name, key)
			}); err != nil {
				return err
			}
			continue
		}
		path := filepath.Join(filepath.Dir(dst.path), name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := writeFileAtomic(path, key); err != nil {
			return err
		}
	}
	return nil
}
