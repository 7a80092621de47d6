package serve

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowctl/flowctl/internal/controlplane"
)

// newMetricsRegistry is the Prometheus registry /metrics serves: the
// control plane's counters and gauges, read from it at each scrape, plus
// the Go runtime's and this process's (RSS, open files). A registry of its
// own, never the global one, so that two control planes in one process
// (tests, `flowctl run`) do not collide.
func newMetricsRegistry(cp *controlplane.Server, expected controlplane.ExpectedComponents, log *slog.Logger) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(cp, expected, log),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// collector exports controlplane.Server.Metrics and Snapshot. Counters are
// the server's own (it counts; the collector only reads), so a scrape
// costs one pass over the registry.
type collector struct {
	cp       *controlplane.Server
	expected controlplane.ExpectedComponents
	log      *slog.Logger

	registrations, heartbeats, unregistrations, unknownService *prometheus.Desc
	tokensRefreshed, flushes, flushErrors, refusals            *prometheus.Desc
	registered, alive, unmanaged, unauthenticated              *prometheus.Desc
	compRegistered, compAlive, compHealthy, compLastHeartbeat  *prometheus.Desc
	attestations, attestationFailures, attested                *prometheus.Desc
}

const ns = "flowctl_controlplane"

func newCollector(cp *controlplane.Server, expected controlplane.ExpectedComponents, log *slog.Logger) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
	}
	return &collector{
		cp: cp, expected: expected, log: log,
		registrations:       d("registrations_total", "Successful registrations (Register and RegisterComponent)."),
		heartbeats:          d("heartbeats_total", "Accepted heartbeats, both protocols."),
		unregistrations:     d("unregistrations_total", "UnregisterComponent calls that removed a registration."),
		unknownService:      d("unknown_service_total", "Heartbeats and status queries naming a service id the registry does not hold."),
		tokensRefreshed:     d("tokens_refreshed_total", "Component tokens refreshed past half their life."),
		flushes:             d("state_flushes_total", "Writes of the registry to the state file."),
		flushErrors:         d("state_flush_errors_total", "Failed writes of the registry to the state file (retried)."),
		refusals:            d("refusals_total", "Calls refused, by reason (missing, bad_signature, expired, impersonation, ...).", "reason"),
		registered:          d("registrations", "Registrations held, alive or not."),
		alive:               d("registrations_alive", "Registrations whose last heartbeat is within 3 cadences."),
		unmanaged:           d("registrations_unmanaged", "Registrations attributed to no pipeline component."),
		unauthenticated:     d("registrations_unauthenticated", "Registrations made without a token and not attested (auth mode permissive)."),
		attested:            d("registrations_attested", "Registrations made without a token by an attested component instance."),
		attestations:        d("attestations_total", "Connections proven to come from a component instance (once per connection)."),
		attestationFailures: d("attestation_failures_total", "Attempts to attest a connection that proved nothing (each retry while the state catches up counts)."),
		compRegistered:      d("component_registered", "1 when the pipeline component has a registration, else 0.", "component"),
		compAlive:           d("component_alive", "1 when the pipeline component has an alive registration, else 0.", "component"),
		compHealthy:         d("component_healthy", "1 when the pipeline component has a healthy registration (alive, not reporting unhealthy, stopping or starting), else 0.", "component"),
		compLastHeartbeat:   d("component_last_heartbeat_timestamp_seconds", "Unix time of the component's last heartbeat (absent before the first).", "component"),
	}
}

// Describe sends every descriptor.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.registrations, c.heartbeats, c.unregistrations, c.unknownService,
		c.tokensRefreshed, c.flushes, c.flushErrors, c.refusals,
		c.registered, c.alive, c.unmanaged, c.unauthenticated,
		c.compRegistered, c.compAlive, c.compHealthy, c.compLastHeartbeat,
		c.attestations, c.attestationFailures, c.attested,
	} {
		ch <- d
	}
}

// componentHealth folds the registrations of one component: any alive or
// healthy one makes it so.
type componentHealth struct {
	registered, alive, healthy bool
	last                       time.Time
}

// Collect reads the control plane now.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.cp.Metrics()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.registrations, m.Registrations)
	counter(c.heartbeats, m.Heartbeats)
	counter(c.unregistrations, m.Unregistrations)
	counter(c.unknownService, m.UnknownService)
	counter(c.tokensRefreshed, m.TokensRefreshed)
	counter(c.flushes, m.Flushes)
	counter(c.flushErrors, m.FlushErrors)
	for reason, n := range m.Refusals {
		counter(c.refusals, n, reason)
	}
	gauge(c.registered, float64(m.Registered))
	gauge(c.alive, float64(m.Alive))
	gauge(c.unmanaged, float64(m.Unmanaged))
	gauge(c.unauthenticated, float64(m.Unauthenticated))
	gauge(c.attested, float64(m.Attested))
	counter(c.attestations, m.Attestations)
	counter(c.attestationFailures, m.AttestationFailures)

	// Every component the state has gets a series, registered or not, so
	// that "component_healthy == 0" alerts on one that never registered.
	comps := map[string]*componentHealth{}
	if c.expected != nil {
		list, err := c.expected.ExpectedComponents()
		if err != nil {
			c.log.Warn("serve: metrics: could not read the pipeline's components from the state", "err", err)
		}
		for _, e := range list {
			comps[e.Address] = &componentHealth{}
		}
	}
	for _, r := range c.cp.Snapshot() {
		if r.Component == "" {
			continue
		}
		h := comps[r.Component]
		if h == nil {
			h = &componentHealth{}
			comps[r.Component] = h
		}
		h.registered = true
		h.alive = h.alive || r.Alive
		h.healthy = h.healthy || r.Healthy
		if r.LastHeartbeat.After(h.last) {
			h.last = r.LastHeartbeat
		}
	}
	for addr, h := range comps {
		gauge(c.compRegistered, b2f(h.registered), addr)
		gauge(c.compAlive, b2f(h.alive), addr)
		gauge(c.compHealthy, b2f(h.healthy), addr)
		if !h.last.IsZero() {
			gauge(c.compLastHeartbeat, float64(h.last.UnixNano())/1e9, addr)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
