package relay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the relay's counters to Prometheus: per edge the
// events and bytes moved and the seconds since the last event (a lag
// signal: it grows while a source has more to send and nothing moves), per
// component the broken streams.
func (r *Relay) Collector() prometheus.Collector { return &collector{r: r} }

var (
	descEvents = prometheus.NewDesc("flowctl_relay_events_total", "Events the relay moved along an edge of the pipeline.", []string{"from", "to"}, nil)
	descBytes  = prometheus.NewDesc("flowctl_relay_bytes_total", "Bytes of events the relay moved along an edge.", []string{"from", "to"}, nil)
	descIdle   = prometheus.NewDesc("flowctl_relay_edge_idle_seconds", "Seconds since the last event crossed an edge.", []string{"from", "to"}, nil)
	descErrors = prometheus.NewDesc("flowctl_relay_stream_errors_total", "Data-plane streams of a component that broke (a restart, a failure).", []string{"component"}, nil)
)

type collector struct{ r *Relay }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEvents
	ch <- descBytes
	ch <- descIdle
	ch <- descErrors
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, e := range c.r.Edges() {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(e.Events), e.From, e.To)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(e.Bytes), e.From, e.To)
		if !e.LastAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, now.Sub(e.LastAt).Seconds(), e.From, e.To)
		}
	}
	for a, n := range c.r.NodeErrors() {
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(n), a)
	}
}
