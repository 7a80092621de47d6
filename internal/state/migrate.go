package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Migrated is what Migrate moved.
type Migrated struct {
	From, To   string
	Meta       Meta
	Components int
	Events     int
}

// Migrate copies the state at from to to, which must hold no state yet:
// its lineage, serial and creation time, the component records, the
// history and the data (the registry, the watcher's backoff, the token
// generation), so that plans made against from apply to to. from's
// operation lock is held during the copy, so nothing writes it meanwhile;
// from is left as it was. pipeline, when not empty, is the pipeline both
// must belong to.
func Migrate(ctx context.Context, from, to Location, pipeline string) (*Migrated, error) {
	if from.Backend() == to.Backend() && from.Path == to.Path && from.PG == nil {
		return nil, errors.New("migrate: the source and the destination are the same file")
	}
	src, err := OpenAt(from, pipeline, IfExists())
	if err != nil {
		return nil, fmt.Errorf("migrate from: %w", err)
	}
	out := &Migrated{From: src.String()}
	lock, err := src.Acquire(ctx, LockOptions{Operation: "state-migrate"})
	if err != nil {
		return nil, fmt.Errorf("migrate from %s: %w", src, err)
	}
	defer func() { _ = lock.Release() }()
	snap, err := takeSnapshot(src)
	if err != nil {
		return nil, fmt.Errorf("migrate from %s: %w", src, err)
	}
	out.Meta = snap.meta
	dst, err := OpenAt(to, snap.meta.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("migrate to: %w", err)
	}
	out.To = dst.String()
	if !dst.Created() {
		var m Meta
		_ = dst.View(func(tx *Tx) error { m = tx.Meta(); return nil })
		return nil, fmt.Errorf("migrate: %s already holds a state (lineage %s, serial %d); nothing was copied", dst, m.Lineage, m.Serial)
	}
	if err := dst.be.update(snap.restore); err != nil {
		dropFresh(dst)
		return nil, fmt.Errorf("migrate to %s: %w", dst, err)
	}
	if err := moveKeys(src, dst); err != nil {
		return nil, fmt.Errorf("migrate the keys to %s: %w", dst, err)
	}
	out.Components, out.Events = len(snap.buckets[bkComponents]), len(snap.buckets[bkHistory])
	return out, nil
}

// snapshot is a state's content, as kv entries.
type snapshot struct {
	meta    Meta
	raw     map[string][]byte // meta keys copied as they are
	buckets map[string][]pgEntry
	lastSeq uint64
}

func takeSnapshot(s *Store) (*snapshot, error) {
	snap := &snapshot{raw: map[string][]byte{}, buckets: map[string][]pgEntry{}}
	err := s.be.view(func(k kv) error {
		snap.meta = (&Tx{kv: k, now: s.now}).Meta()
		for _, key := range [][]byte{keyLineage, keySerial, keyCreated} {
			snap.raw[string(key)] = append([]byte(nil), k.get(bkMeta, key)...)
		}
		names, err := k.dataBuckets()
		if err != nil {
			return err
		}
		// The keys go their own way (moveKeys): a file state keeps them
		// in files of their own.
		names = slices.DeleteFunc(names, func(n string) bool { return n == bkDataPrefix+keysNamespace })
		for _, b := range append([]string{bkComponents, bkHistory}, names...) {
			err := k.forEach(b, func(key, v []byte) error {
				snap.buckets[b] = append(snap.buckets[b], pgEntry{append([]byte(nil), key...), append([]byte(nil), v...)})
				if b == bkHistory {
					snap.lastSeq = max(snap.lastSeq, btoi(key))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return snap, err
}

// restore writes the snapshot into k, a state just created.
func (snap *snapshot) restore(k kv) error {
	for key, v := range snap.raw {
		if err := k.put(bkMeta, []byte(key), v); err != nil {
			return err
		}
	}
	for b, es := range snap.buckets {
		for _, e := range es {
			if err := k.put(b, e.k, e.v); err != nil {
				return err
			}
		}
	}
	return k.setSequence(bkHistory, snap.lastSeq)
}

// dropFresh removes a state Migrate created and could not fill.
func dropFresh(s *Store) {
	switch b := s.be.(type) {
	case boltFile:
		_ = os.Remove(b.s.path)
	case *pgBackend:
		ctx, cancel := context.WithTimeout(context.Background(), b.s.openTimeout)
		defer cancel()
		_, _ = b.pool.Exec(ctx, "DELETE FROM "+b.table("workspaces")+" WHERE name = $1", b.ws)
	}
}

// MigrationEnds are the two ends of `flowctl state migrate --to to`: the
// file at path and the database the block (its type aside) and the
// environment describe, the source the one to is not.
func MigrationEnds(to, path string, block *BackendSettings, getenv func(string) string) (from, dst Location, err error) {
	pgBlock := BackendSettings{Type: "pg"}
	if block != nil && block.Type == "pg" {
		pgBlock = *block
	}
	db, err := Locate(path, &pgBlock, getenv)
	if err != nil {
		return from, dst, err
	}
	file := Location{Path: path}
	switch to {
	case "pg":
		return file, db, nil
	case "file":
		return db, file, nil
	}
	return from, dst, fmt.Errorf("migrate --to %q: the destination is file or pg", to)
}

// Summary says what was migrated, and what is left to do.
func (m *Migrated) Summary() string {
	return fmt.Sprintf("Migrated the state of pipeline %s (lineage %s, serial %d: %d components, %d history events)\n  from %s\n  to   %s.\n"+
		"The source is left as it was. Point the pipeline at the destination (its backend block, or %s) before the next apply.\n",
		m.Meta.Pipeline, m.Meta.Lineage, m.Meta.Serial, m.Components, m.Events, m.From, m.To, EnvBackend)
}
