package state

import (
	"encoding/json"
	"errors"
	"fmt"
)

// AmendHistory rewrites the event e.Seq names, which AppendHistory wrote
// earlier (a start recorded when it began, whose outcome is known now):
// one row per operation on a component, never two.
func (tx *Tx) AmendHistory(e *Event) error {
	if e.Seq == 0 {
		return errors.New("amend history: the event has no sequence number")
	}
	if tx.kv.get(bkHistory, itob(e.Seq)) == nil {
		return fmt.Errorf("amend history: no event %d", e.Seq)
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode history event: %w", err)
	}
	return tx.kv.put(bkHistory, itob(e.Seq), v)
}
