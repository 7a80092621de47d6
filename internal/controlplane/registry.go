package controlplane

import (
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

// Protocol is the control-plane protocol a registration came in by.
type Protocol string

// Protocols.
const (
	ProtocolV1     Protocol = "v1"     // flowctl.v1.ControlPlaneService (SDK components)
	ProtocolLegacy Protocol = "legacy" // flowctl.ControlPlane (older components)
)

// Attribution says how a registration was tied to a pipeline component.
type Attribution string

// Attribution rules, in the order they are tried.
const (
	ByToken       Attribution = "token"        // a valid token's subject
	ByComponentID Attribution = "component_id" // component_id or ComponentInfo.id equal to a pipeline id
	ByAttestation Attribution = "attestation"  // the caller's connection proven to come from the component's workload
	ByHealthPort  Attribution = "health_port"  // the port of health_endpoint equal to a component's HEALTH_PORT
	Unmanaged     Attribution = "unmanaged"    // none of the above
)

// AuthState says whether a registration was authenticated.
type AuthState string

// Auth states.
const (
	AuthToken AuthState = "token"
	// AuthAttested: no token, but the caller was proven to be the
	// component's workload.
	AuthAttested AuthState = "attested"
	// AuthUnauthenticated: no token and no proof (auth = permissive).
	AuthUnauthenticated AuthState = "unauthenticated"
)

// Registration.Proof values: "token", "attested:" + what was checked
// ("attested:pid 1234", "attested:container 0123456789ab"), "unproven".
const (
	ProofToken    = "token"
	ProofAttested = "attested:"
	ProofUnproven = "unproven"
)

// Reported health statuses (flowctl.v1 HealthStatus, lower-cased).
const (
	StatusUnknown   = "unknown"
	StatusStarting  = "starting"
	StatusHealthy   = "healthy"
	StatusDegraded  = "degraded"
	StatusUnhealthy = "unhealthy"
	StatusStopping  = "stopping"
)

// Registration is what the control plane knows of one registered service.
// Snapshot returns copies; the JSON form is what state keeps (Alive, Healthy
// and LiveUntil are computed, not stored) and what status pages may show.
type Registration struct {
	ServiceID string   `json:"service_id"`
	Protocol  Protocol `json:"protocol"`
	// Component is the address of the pipeline component the registration
	// is attributed to; empty when unmanaged.
	Component    string      `json:"component,omitempty"`
	AttributedBy Attribution `json:"attributed_by"`
	Auth         AuthState   `json:"auth"`
	// Proof says how the registration was proven (ProofToken,
	// ProofAttested+"pid 1234", ProofUnproven).
	Proof string `json:"proof,omitempty"`
	// Unattributed says why an unmanaged registration could not be tied to
	// a component.
	Unattributed string `json:"unattributed,omitempty"`
	// InstanceID is the instance the registration was proven for: the
	// token's jti, or the attested workload's instance.
	InstanceID string `json:"instance_id,omitempty"`
	// ClaimedID is the id the component sent (component_id, ComponentInfo.id
	// or service_id), if any.
	ClaimedID string `json:"claimed_id,omitempty"`
	// Type is source, processor, sink, pipeline or "" (unspecified).
	Type             string            `json:"type,omitempty"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Version          string            `json:"version,omitempty"`
	InputEventTypes  []string          `json:"input_event_types,omitempty"`
	OutputEventTypes []string          `json:"output_event_types,omitempty"`
	Endpoint         string            `json:"endpoint,omitempty"`
	HealthEndpoint   string            `json:"health_endpoint,omitempty"`
	MaxInflight      int32             `json:"max_inflight,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	RemoteAddr       string            `json:"remote_addr,omitempty"`

	// Status is the health the component last reported (v1 only; legacy
	// heartbeats carry none and stay "unknown").
	Status string `json:"status"`
	// Metrics are the last heartbeat's metrics (legacy doubles rendered
	// with strconv 'g').
	Metrics       map[string]string `json:"metrics,omitempty"`
	RegisteredAt  time.Time         `json:"registered_at"`
	LastHeartbeat time.Time         `json:"last_heartbeat,omitzero"`
	Heartbeats    uint64            `json:"heartbeats"`
	// Cadence is the observed heartbeat interval (a moving average); zero
	// until the first heartbeat.
	Cadence config.Duration `json:"cadence,omitempty"`

	// Alive: the last heartbeat (or the registration, before any) is
	// younger than 3 cadences. Healthy: alive and not reporting unhealthy,
	// stopping or starting. LiveUntil: when it stops being alive without a
	// new heartbeat.
	Alive     bool      `json:"alive"`
	Healthy   bool      `json:"healthy"`
	LiveUntil time.Time `json:"live_until"`
}

// componentID is the pipeline id of the attributed component ("" when
// unmanaged).
func (r *Registration) componentID() string {
	if _, id, ok := config.ParseAddress(r.Component); ok {
		return id
	}
	return ""
}

// entry is one registration in the registry. Static fields are set before
// the entry is published and never change; the heartbeat part is guarded
// by mu.
type entry struct {
	mu  sync.Mutex
	reg Registration
	// metricsF holds legacy heartbeat metrics as sent (doubles), so
	// GetServiceStatus returns them without a round trip through strings.
	metricsF map[string]float64
	metricsS map[string]string
	// dirty: changed since last written to state.
	dirty atomic.Bool
	// local is the control plane's end of the connection the registration
	// came on (for re-attribution); not persisted.
	local netip.AddrPort
}

// snapshot copies the entry's registration (maps shared read-only: they are
// replaced, never mutated, by heartbeats).
func (e *entry) snapshot() (Registration, map[string]float64) {
	e.mu.Lock()
	r := e.reg
	mf, ms := e.metricsF, e.metricsS
	e.mu.Unlock()
	r.Metrics = ms
	if ms == nil && mf != nil {
		r.Metrics = make(map[string]string, len(mf))
		for k, v := range mf {
			r.Metrics[k] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return r, mf
}

const shardCount = 64

// registry is a sharded map of service id → entry: heartbeats of different
// services never contend on one lock, and lookups take only a read lock.
type registry struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
	_  [40]byte // keep shards on separate cache lines
}

func newRegistry() *registry {
	r := &registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = map[string]*entry{}
	}
	return r
}

func (r *registry) shard(id string) *shard {
	return &r.shards[maphash.String(r.seed, id)%shardCount]
}

func (r *registry) get(id string) *entry {
	sh := r.shard(id)
	sh.mu.RLock()
	e := sh.m[id]
	sh.mu.RUnlock()
	return e
}

func (r *registry) each(fn func(*entry)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		list := make([]*entry, 0, len(sh.m))
		for _, e := range sh.m {
			list = append(list, e)
		}
		sh.mu.RUnlock()
		for _, e := range list {
			fn(e)
		}
	}
}

func (r *registry) len() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// Liveness.
const (
	// MissedBeats is how many cadences without a heartbeat make a
	// registration dead.
	MissedBeats = 3
	// MinCadence bounds the observed cadence below, so a component that
	// heartbeats in bursts is not declared dead after a few milliseconds.
	MinCadence = time.Second
)

func (s *Server) window(cadence time.Duration) time.Duration {
	c := cadence
	if c <= 0 {
		c = s.opts.DefaultCadence
	}
	if c < MinCadence {
		c = MinCadence
	}
	return MissedBeats * c
}

// fill computes Alive, Healthy and LiveUntil of r at now.
func (s *Server) fill(r *Registration, now time.Time) {
	last := r.LastHeartbeat
	if last.IsZero() {
		last = r.RegisteredAt
	}
	r.LiveUntil = last.Add(s.window(r.Cadence.D()))
	r.Alive = now.Before(r.LiveUntil)
	switch r.Status {
	case StatusUnhealthy, StatusStopping, StatusStarting:
		r.Healthy = false
	default:
		// unknown counts: SDK components report 0 while healthy.
		r.Healthy = r.Alive
	}
}

// observeCadence folds one heartbeat interval into the moving average. An
// interval far above the average is a missed beat, not a new cadence: it
// moves the average by at most 4× the current value per beat.
func observeCadence(avg, interval time.Duration) time.Duration {
	if interval <= 0 {
		return avg
	}
	if avg <= 0 {
		return interval
	}
	if interval > 4*avg {
		interval = 4 * avg
	}
	return (3*avg + interval) / 4
}

// sortRegistrations orders by component address (unmanaged last), then
// service id.
func sortRegistrations(list []Registration) {
	slices.SortFunc(list, func(a, b Registration) int {
		if (a.Component == "") != (b.Component == "") {
			if a.Component == "" {
				return 1
			}
			return -1
		}
		if c := strings.Compare(a.Component, b.Component); c != 0 {
			return c
		}
		return strings.Compare(a.ServiceID, b.ServiceID)
	})
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
