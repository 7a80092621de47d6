package main

import (
	"testing"
	"time"
)

// TestSmoke runs the load generator briefly against an in-process control
// plane, both protocols, with and without tokens, so that the benchmark
// keeps working as the control plane changes.
func TestSmoke(t *testing.T) {
	for _, tokensOn := range []bool{false, true} {
		for _, rate := range []time.Duration{100 * time.Millisecond, 0} {
			c := config{n: 6, rate: rate, duration: 600 * time.Millisecond, protocol: "both", tokens: tokensOn,
				concurrency: 4, timeout: 5 * time.Second, regConc: 3, inprocess: true}
			res, err := run(c)
			if err != nil {
				t.Fatal(err)
			}
			if res.Registered != 6 || res.RegisterErrors != 0 || res.HeartbeatErrs != 0 || res.Heartbeats < 6 || len(res.FirstErrors) != 0 {
				t.Fatalf("tokens=%v rate=%s: %+v", tokensOn, rate, res)
			}
			m := res.ServerStats.Metrics
			if m == nil || m.Heartbeats != uint64(res.Heartbeats) || m.Unmanaged != 0 {
				t.Fatalf("server metrics %+v", m)
			}
			if tokensOn != (m.Unauthenticated == 0) {
				t.Fatalf("tokens=%v but %d unauthenticated", tokensOn, m.Unauthenticated)
			}
		}
	}
}
