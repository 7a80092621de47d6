package apply

import (
	"github.com/flowctl/flowctl/internal/state"
)

// rehash records the plan's spec hash for a component the plan leaves
// alone whose record holds another one: the plan found them the same spec
// (a hash written before spec hashes were keyed, plan's sameSpec). The
// object keeps the hash it was started with, which ObjectSpecHash then
// names, so that it is not taken for changed outside flowctl. A failure is
// logged, not fatal: the next apply tries again, and until then plans still
// know the old hash.
func (w *walker) rehash(n *node) {
	ch := n.ch
	if ch.SpecHash == "" {
		return
	}
	// Most components' records hold the plan's hash: a read settles it,
	// and no write is made.
	var stale bool
	if err := w.Store.View(func(tx *state.Tx) error {
		rec, err := tx.Component(ch.Address)
		stale = rec != nil && rec.SpecHash != ch.SpecHash
		return err
	}); err != nil || !stale {
		return
	}
	err := w.Store.Batch(func(tx *state.Tx) error {
		rec, err := tx.Component(ch.Address)
		if err != nil || rec == nil || rec.SpecHash == ch.SpecHash {
			return err
		}
		if rec.ObjectSpecHash == "" {
			rec.ObjectSpecHash = rec.SpecHash
		}
		rec.SpecHash = ch.SpecHash
		return tx.PutComponent(rec)
	})
	if err != nil {
		w.Log.Warn("record the keyed spec hash", "address", ch.Address, "err", err)
	}
}
