package status

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/watch"
)

// observeTimeout bounds one executor's answer about one component.
const observeTimeout = 5 * time.Second

// facts is everything a Doc is derived from, read at one instant. Nothing
// in it is looked up again while deriving.
type facts struct {
	now       time.Time
	stateFile string
	meta      state.Meta
	records   []*state.Record
	// desired is nil when working from the state file alone.
	desired *config.Pipeline
	// observed holds the executors' answers by address; a record without
	// a handle has none.
	observed map[string]*observation
	// regs is the registry as the control plane last persisted it.
	regs []controlplane.Registration
	// watched is the restart watcher's saved state by address.
	watched      map[string]watch.State
	controlPlane ControlPlane
	dataFlows    []relay.Edge
}

// observation is an executor's answer about one record.
type observation struct {
	obs providers.Observed
	err error
}

// readFacts reads what the state file holds: the records, the watcher's
// saved states, the persisted registry, the serve record and the relay's
// counters.
func readFacts(store *state.Store, now time.Time) (*facts, error) {
	f := &facts{now: now, stateFile: store.Where(), watched: map[string]watch.State{}, dataFlows: serve.RelayEdges(store)}
	err := store.View(func(tx *state.Tx) error {
		f.meta = tx.Meta()
		var err error
		if f.records, err = tx.Components(); err != nil {
			return err
		}
		return tx.ForEachData(watch.DataNamespace, func(k string, v []byte) error {
			// An unreadable saved state is as good as none: the row then
			// says what the record and reality say.
			if st, err := watch.UnmarshalState(v); err == nil {
				f.watched[k] = st
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if f.regs, err = controlplane.ReadRegistrations(store, now); err != nil {
		return nil, err
	}
	rec, err := serve.ReadRecord(store)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		f.controlPlane = ControlPlane{
			Running: rec.Alive(), PID: rec.Process.PID, StartedAt: rec.StartedAt,
			GRPC: rec.GRPC, AlsoGRPC: rec.AlsoGRPC, DockerGateway: rec.Gateway, HTTP: rec.HTTP, TLS: rec.TLS, AuthMode: string(rec.AuthMode),
		}
	}
	return f, nil
}

// observe asks the executors about every record that names an object, in
// parallel.
func observe(ctx context.Context, reg *providers.Registry, recs []*state.Record) map[string]*observation {
	out := make(map[string]*observation, len(recs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range recs {
		if len(r.Handle) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := observeOne(ctx, reg, r)
			mu.Lock()
			out[r.Address] = o
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func observeOne(ctx context.Context, reg *providers.Registry, r *state.Record) *observation {
	prov, err := reg.Get(r.Provider)
	if err != nil {
		return &observation{err: err}
	}
	octx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	obs, err := prov.Observe(octx, r.Handle)
	return &observation{obs: obs, err: err}
}
