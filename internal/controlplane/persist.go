package controlplane

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// Namespace is the state data namespace of the registry. Each registration
// has two keys: "r/<service id>", the registration as made (a Registration
// in JSON, written once), and "h/<service id>", its heartbeat state
// (written at most every FlushInterval, and small, so that a thousand
// components heartbeating cost one short transaction a second).
const Namespace = "controlplane"

const (
	regPrefix = "r/"
	hbPrefix  = "h/"
)

// op is a pending write of one key (value nil: delete).
type op struct {
	key   string
	value []byte
}

// hbRecord is the persisted heartbeat state of a registration.
type hbRecord struct {
	Last     time.Time          `json:"last,omitzero"`
	Count    uint64             `json:"n"`
	Cadence  time.Duration      `json:"cadence_ns,omitempty"`
	Status   string             `json:"status,omitempty"`
	Metrics  map[string]string  `json:"metrics,omitempty"`
	MetricsF map[string]float64 `json:"metrics_f,omitempty"`
}

// commitWait bounds how long a Register call waits for its registration to
// reach the state file. Past it the call is answered anyway (the write is
// retried with the next flush): a busy state file (a long apply
// transaction) must not block components.
const commitWait = 2 * time.Second

// load reads the persisted registry.
func (s *Server) load() error {
	if s.opts.Store == nil {
		return nil
	}
	regs, bad, err := readRegistry(s.opts.Store)
	if err != nil {
		return err
	}
	for id, e := range regs {
		s.reg.shard(id).m[id] = e
	}
	for _, k := range bad {
		s.log.Warn("control plane: dropping an unreadable persisted registration", "key", k)
		s.enqueue(op{key: k})
	}
	return nil
}

// ReadRegistrations reads the registry a control plane persisted in store,
// without a running server (for `flowctl status` when serve is not running,
// or apply's wait for a component to register). Alive and Healthy are
// computed at now with the default liveness settings.
func ReadRegistrations(store *state.Store, now time.Time) ([]Registration, error) {
	regs, _, err := readRegistry(store)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: Options{DefaultCadence: defaultCadence}}
	out := make([]Registration, 0, len(regs))
	for _, e := range regs {
		r, _ := e.snapshot()
		s.fill(&r, now)
		out = append(out, r)
	}
	sortRegistrations(out)
	return out, nil
}

// readRegistry reads the registrations in store; bad lists keys that could
// not be read.
func readRegistry(store *state.Store) (regs map[string]*entry, bad []string, err error) {
	regs = map[string]*entry{}
	hbs := map[string]hbRecord{}
	err = store.View(func(tx *state.Tx) error {
		return tx.ForEachData(Namespace, func(key string, value []byte) error {
			switch {
			case strings.HasPrefix(key, regPrefix):
				var r Registration
				if err := json.Unmarshal(value, &r); err != nil || r.ServiceID != key[len(regPrefix):] {
					bad = append(bad, key)
					return nil
				}
				r.Metrics, r.Alive, r.Healthy, r.LiveUntil = nil, false, false, time.Time{}
				regs[r.ServiceID] = &entry{reg: r}
			case strings.HasPrefix(key, hbPrefix):
				var h hbRecord
				if err := json.Unmarshal(value, &h); err != nil {
					bad = append(bad, key)
					return nil
				}
				hbs[key[len(hbPrefix):]] = h
			case strings.HasPrefix(key, refusalPrefix):
				// refusals (ReadRefusals)
			default:
				bad = append(bad, key)
			}
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load control-plane registry: %w", err)
	}
	for id, h := range hbs {
		e := regs[id]
		if e == nil {
			bad = append(bad, hbPrefix+id)
			continue
		}
		e.reg.LastHeartbeat, e.reg.Heartbeats, e.reg.Cadence = h.Last, h.Count, durationOf(h.Cadence)
		if h.Status != "" {
			e.reg.Status = h.Status
		}
		e.metricsS, e.metricsF = h.Metrics, h.MetricsF
	}
	return regs, bad, nil
}

// registrationOps writes a new registration: its record and its (empty)
// heartbeat state, replacing any left by an earlier registration of the
// same id.
func registrationOps(e *entry) []op {
	r, _ := e.snapshot()
	r.Metrics, r.Alive, r.Healthy, r.LiveUntil = nil, false, false, time.Time{}
	v, err := json.Marshal(&r)
	if err != nil { // cannot happen: only strings, maps, times
		panic(err)
	}
	return []op{{key: regPrefix + r.ServiceID, value: v}, heartbeatOp(e)}
}

func heartbeatOp(e *entry) op {
	e.mu.Lock()
	h := hbRecord{Last: e.reg.LastHeartbeat, Count: e.reg.Heartbeats, Cadence: e.reg.Cadence.D(), Status: e.reg.Status, Metrics: e.metricsS, MetricsF: e.metricsF}
	id := e.reg.ServiceID
	e.mu.Unlock()
	// The maps are replaced by heartbeats, never modified: safe to encode
	// outside the lock.
	v, err := json.Marshal(&h)
	if err != nil {
		panic(err)
	}
	return op{key: hbPrefix + id, value: v}
}

func deleteOps(id string) []op {
	return []op{{key: regPrefix + id}, {key: hbPrefix + id}}
}

// enqueue adds a write for the next flush.
func (s *Server) enqueue(ops ...op) {
	s.pendingMu.Lock()
	s.pending = append(s.pending, ops...)
	s.pendingMu.Unlock()
}

// commit writes ops to the state soon (with the next flush, started at
// once) and waits for it, at most commitWait.
func (s *Server) commit(ops ...op) {
	if s.opts.Store == nil {
		return
	}
	done := make(chan struct{})
	s.pendingMu.Lock()
	s.pending = append(s.pending, ops...)
	s.waiters = append(s.waiters, done)
	s.pendingMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	t := time.NewTimer(commitWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-s.closed:
	}
}

// flushLoop writes heartbeats every FlushInterval and registrations as soon
// as they are enqueued, each round in one transaction.
func (s *Server) flushLoop() {
	defer close(s.flushed)
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	lastPrune := s.now()
	for {
		select {
		case <-s.closed:
			s.flush()
			return
		case <-s.kick:
		case <-tick.C:
			if now := s.now(); now.Sub(lastPrune) >= pruneEvery {
				lastPrune = now
				s.prune(now)
			}
		}
		s.flush()
	}
}

// flush writes dirty heartbeat state, then pending registration writes in
// the order they were made, in one transaction. On failure everything is
// kept for the next round.
func (s *Server) flush() {
	if s.opts.Store == nil {
		return
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	// Dirty entries first: a pending op (a delete, a replacement) enqueued
	// after an entry was collected here must win, so ops are applied last.
	var dirty []*entry
	s.reg.each(func(e *entry) {
		if e.dirty.Swap(false) {
			dirty = append(dirty, e)
		}
	})
	s.pendingMu.Lock()
	pending, waiters := s.pending, s.waiters
	s.pending, s.waiters = nil, nil
	s.pendingMu.Unlock()
	if len(dirty) == 0 && len(pending) == 0 {
		for _, w := range waiters {
			close(w)
		}
		return
	}
	writes := make([]op, 0, len(dirty)+len(pending))
	for _, e := range dirty {
		writes = append(writes, heartbeatOp(e))
	}
	writes = append(writes, pending...)
	s.storeMu.Lock()
	err := s.opts.Store.Update(func(tx *state.Tx) error {
		for _, w := range writes {
			var err error
			if w.value == nil {
				err = tx.DeleteData(Namespace, w.key)
			} else {
				err = tx.PutData(Namespace, w.key, w.value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	s.storeMu.Unlock()
	if err != nil {
		s.metrics.FlushErrors.Add(1)
		s.log.Error("control plane: could not write the registry to the state file; will retry", "err", err)
		for _, e := range dirty {
			e.dirty.Store(true)
		}
		s.pendingMu.Lock()
		s.pending = append(pending, s.pending...)
		s.pendingMu.Unlock()
	} else {
		s.metrics.Flushes.Add(1)
	}
	for _, w := range waiters {
		close(w)
	}
}

const pruneEvery = time.Minute

// prune forgets registrations dead for longer than ForgetAfter.
func (s *Server) prune(now time.Time) {
	if s.opts.ForgetAfter <= 0 {
		return
	}
	var gone []string
	s.reg.each(func(e *entry) {
		r, _ := e.snapshot()
		s.fill(&r, now)
		if !r.Alive && now.Sub(r.LiveUntil) > s.opts.ForgetAfter {
			gone = append(gone, r.ServiceID)
		}
	})
	for _, id := range gone {
		if s.remove(id, nil) {
			s.log.Info("control plane: forgot a dead registration", "service_id", id)
		}
	}
}

// remove deletes id from the registry (when it is still old, if old is not
// nil) and enqueues its deletion from state.
func (s *Server) remove(id string, old *entry) bool {
	sh := s.reg.shard(id)
	sh.mu.Lock()
	e := sh.m[id]
	ok := e != nil && (old == nil || e == old)
	if ok {
		delete(sh.m, id)
	}
	sh.mu.Unlock()
	if ok {
		s.enqueue(deleteOps(id)...)
	}
	return ok
}
