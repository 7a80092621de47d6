package controlplane

import (
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/tokens"
)

// RefusalReasons lists every reason a call can be refused for: the token's
// own (tokens.Reasons) and the control plane's.
var RefusalReasons = func() []string {
	var out []string
	for _, r := range tokens.Reasons {
		out = append(out, string(r))
	}
	return append(out, ReasonUnknownComponent, ReasonReplacedInstance, ReasonImpersonation)
}()

// Metrics are the control plane's counters; every field is safe for
// concurrent use. Server.Metrics returns a snapshot of them with gauges.
type Metrics struct {
	Registrations   atomic.Uint64 // successful Register/RegisterComponent calls
	Heartbeats      atomic.Uint64 // accepted heartbeats, both protocols
	Unregistrations atomic.Uint64
	UnknownService  atomic.Uint64 // heartbeats or status queries naming an unknown service id
	TokensRefreshed atomic.Uint64
	Flushes         atomic.Uint64 // state writes
	FlushErrors     atomic.Uint64
	// Attestations and AttestationFailures count the Attestor's answers
	// (a connection asks once while the pipeline is unchanged);
	// AttestationNanos sums their time.
	Attestations        atomic.Uint64
	AttestationFailures atomic.Uint64
	AttestationNanos    atomic.Uint64
	// refusals by reason; the map is built once and only read after.
	refusals map[string]*atomic.Uint64
}

func newMetrics() *Metrics {
	m := &Metrics{refusals: map[string]*atomic.Uint64{}}
	for _, r := range RefusalReasons {
		m.refusals[r] = new(atomic.Uint64)
	}
	return m
}

func (m *Metrics) observeAttestation(d time.Duration, ok bool) {
	if ok {
		m.Attestations.Add(1)
	} else {
		m.AttestationFailures.Add(1)
	}
	m.AttestationNanos.Add(uint64(d.Nanoseconds()))
}

func (m *Metrics) refused(reason string) {
	if c := m.refusals[reason]; c != nil {
		c.Add(1)
		return
	}
	m.refusals[string(tokens.ReasonMalformed)].Add(1)
}

// MetricsSnapshot is a copy of the counters plus gauges computed from the
// registry, ready to be exported (Prometheus: counters *_total, gauges as
// they are).
type MetricsSnapshot struct {
	Registrations   uint64            `json:"registrations_total"`
	Heartbeats      uint64            `json:"heartbeats_total"`
	Unregistrations uint64            `json:"unregistrations_total"`
	UnknownService  uint64            `json:"unknown_service_total"`
	TokensRefreshed uint64            `json:"tokens_refreshed_total"`
	Flushes         uint64            `json:"state_flushes_total"`
	FlushErrors     uint64            `json:"state_flush_errors_total"`
	Refusals        map[string]uint64 `json:"refusals_total"` // by reason, every reason present

	Attestations        uint64  `json:"attestations_total"`
	AttestationFailures uint64  `json:"attestation_failures_total"`
	AttestationSeconds  float64 `json:"attestation_seconds_total"`

	Registered      int `json:"registered"`      // registrations held
	Alive           int `json:"alive"`           // of which alive
	Unmanaged       int `json:"unmanaged"`       // of which attributed to no component
	Unauthenticated int `json:"unauthenticated"` // of which made without a token or proof
	Attested        int `json:"attested"`        // of which proven by attestation
}
