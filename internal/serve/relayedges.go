package serve

import (
	"context"
	"encoding/json"
	"time"

	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/state"
)

// relayNamespace and relayKey keep the relay's edge counters in state, for
// `flowctl status`.
const (
	relayNamespace = "relay"
	relayKey       = "edges"
	relaySaveEvery = 2 * time.Second
)

// SaveRelayEdges writes r's edge counters into state every couple of
// seconds, when they changed, until ctx ends.
func SaveRelayEdges(ctx context.Context, store *state.Store, r *relay.Relay) {
	t := time.NewTicker(relaySaveEvery)
	defer t.Stop()
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		edges := r.Edges()
		if len(edges) == 0 {
			continue
		}
		v, err := json.Marshal(edges)
		if err != nil || string(v) == string(last) {
			continue
		}
		store.Settled(ctx, settleQuiet, settleMax)
		if err := store.Update(func(tx *state.Tx) error { return tx.PutData(relayNamespace, relayKey, v) }); err == nil {
			last = v
		}
	}
}

// RelayEdges reads the edge counters serve last saved.
func RelayEdges(store *state.Store) []relay.Edge {
	var edges []relay.Edge
	_ = store.View(func(tx *state.Tx) error {
		if v := tx.GetData(relayNamespace, relayKey); v != nil {
			_ = json.Unmarshal(v, &edges)
		}
		return nil
	})
	return edges
}
