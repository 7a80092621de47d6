package logs

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// Reader gives the log of an executor's instance: providers.Provider's
// Logs method, which every executor implements. With opts.Timestamps each
// line must read "<RFC 3339 time> <stream> <text>"; Since keeps lines at or
// after it, Tail the last N (0: all); with Follow the stream goes on as the
// log grows, across the executor's own log rotation, and ends when ctx
// ends, the reader is closed, or the object stops for good.
type Reader interface {
	Logs(ctx context.Context, h providers.Handle, opts providers.LogOptions) (io.ReadCloser, error)
}

// ReaderFor returns the Reader of the executor called provider.
type ReaderFor func(provider string) (Reader, error)

// Instance is a component instance as state records it.
type Instance struct {
	Address    string
	Provider   string
	Handle     providers.Handle
	InstanceID string
	SpecHash   string
	// StartedAt is the earliest the instance is known to have started:
	// its executor's start time when available (its first line comes after
	// it), else state's record of the start.
	StartedAt time.Time
}

// Snapshot is what Run needs of state at one moment.
type Snapshot struct {
	// At is when the snapshot was read: every instance whose record was
	// written before it is in Instances.
	At time.Time
	// Instances, sorted by address.
	Instances []Instance
	// Markers are the marker lines (see MarkerText) of the history events
	// after the sequence number asked for, oldest first, each at its
	// event's time.
	Markers []Line
	// LastSeq is the sequence number of the newest history event.
	LastSeq uint64
}

// Inventory reads snapshots; StateInventory is the one flowctl uses.
type Inventory interface {
	Snapshot(ctx context.Context, afterSeq uint64) (Snapshot, error)
}

// StateInventory reads snapshots from a state file. Providers, when set,
// are asked once per instance for its start time (Observe).
type StateInventory struct {
	Store     *state.Store
	Providers *providers.Registry
	Now       func() time.Time

	mu      sync.Mutex
	started map[string]time.Time // by instance ID
}

// historyPage is how many events a snapshot reads from the end of the
// history before reading it all.
const historyPage = 64

// Snapshot implements Inventory.
func (s *StateInventory) Snapshot(ctx context.Context, afterSeq uint64) (Snapshot, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	snap := Snapshot{At: now()}
	var (
		recs   []*state.Record
		events []*state.Event
	)
	err := s.Store.View(func(tx *state.Tx) error {
		var err error
		if recs, err = tx.Components(); err != nil {
			return err
		}
		if events, err = tx.History(historyPage); err != nil {
			return err
		}
		if len(events) == historyPage && events[0].Seq > afterSeq+1 {
			events, err = tx.History(0)
		}
		return err
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("read state: %w", err)
	}
	for _, r := range recs {
		if len(r.Handle) == 0 {
			continue // nothing was started, or the start is not recorded yet
		}
		hash := r.ObjectSpecHash
		if hash == "" {
			hash = r.SpecHash
		}
		snap.Instances = append(snap.Instances, Instance{
			Address: r.Address, Provider: r.Provider, Handle: r.Handle,
			InstanceID: r.InstanceID, SpecHash: hash,
			StartedAt: s.startedAt(ctx, r),
		})
	}
	sort.Slice(snap.Instances, func(i, j int) bool { return snap.Instances[i].Address < snap.Instances[j].Address })
	for _, e := range events {
		snap.LastSeq = max(snap.LastSeq, e.Seq)
		if e.Seq <= afterSeq {
			continue
		}
		if m, ok := markerOf(e); ok {
			snap.Markers = append(snap.Markers, m)
		}
	}
	if snap.LastSeq < afterSeq {
		snap.LastSeq = afterSeq
	}
	return snap, nil
}

// startedAt is the earlier of the record's start and the executor's.
func (s *StateInventory) startedAt(ctx context.Context, r *state.Record) time.Time {
	t := r.StartedAt
	if s.Providers == nil || r.InstanceID == "" {
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started == nil {
		s.started = map[string]time.Time{}
	}
	obs, ok := s.started[r.InstanceID]
	if !ok {
		if p, err := s.Providers.Get(r.Provider); err == nil {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if o, err := p.Observe(ctx, r.Handle); err == nil && o.Exists {
				obs = o.StartedAt
			}
			cancel()
		}
		s.started[r.InstanceID] = obs
	}
	if !obs.IsZero() && (t.IsZero() || obs.Before(t)) {
		t = obs
	}
	return t
}
