package e2e

import (
	"slices"
	"strings"
	"testing"
)

// A component that never becomes ready fails the apply: the error names
// it, its last probe output and its last log lines; what depends on it is
// not started, what does not finishes. The failed component stays as it
// is — its process alive, recorded in state as failed with its handle (no
// rollback; its log and the process are there to look at) — and the next
// plan replaces it as tainted.
func TestApplyFailsWhenAComponentNeverBecomesReady(t *testing.T) {
	f := newFixture(t)
	cs := []comp{
		{kind: "source", id: "bad", env: map[string]string{
			"TC_NEVER_HEALTHY": "1", "TC_PRINT": "bad-stdout {n};stderr:bad-stderr {n}", "TC_PRINT_INTERVAL": "50ms",
		}, health: "    http              = \"/health\"\n    interval          = \"200ms\"\n    failure_threshold = 2"},
		{kind: "source", id: "good"},
		{kind: "processor", id: "after-bad", inputs: []string{"source.bad", "source.good"}},
		{kind: "sink", id: "after-after", inputs: []string{"processor.after-bad"}},
		{kind: "sink", id: "after-good", inputs: []string{"source.good"}},
	}
	f.writePipeline(cs)
	r := f.must(1, "apply", "-auto-approve")
	for _, want := range []string{
		"source.bad: create failed: not ready: health check failed 2 consecutive times",
		"503 Service Unavailable: not ready", // the probe's last output
		"last log lines:",
		"bad-stdout ", "bad-stderr ",
		"processor.after-bad: not started: its upstream source.bad failed",
		"sink.after-after: not started: its upstream processor.after-bad was not started",
	} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q\n%s", want, r)
		}
	}
	if strings.Contains(r.err, "source.good") || strings.Contains(r.err, "sink.after-good") {
		t.Errorf("independent components reported as failed\n%s", r)
	}

	live := byAddr(procsOf(f.name))
	recs := f.records()
	var recorded, running []string
	for a := range recs {
		recorded = append(recorded, a)
	}
	for a := range live {
		running = append(running, a)
	}
	slices.Sort(recorded)
	slices.Sort(running)
	if want := []string{"sink.after-good", "source.bad", "source.good"}; !slices.Equal(recorded, want) || !slices.Equal(running, want) {
		t.Fatalf("recorded %v, running %v; want %v for both", recorded, running, want)
	}
	bad := recs["source.bad"]
	if bad.Status != "failed" || !strings.Contains(bad.StatusReason, "health check failed") || childOf(bad.Handle) != live["source.bad"][0].id {
		t.Fatalf("source.bad recorded as %s (%s) with %v; its process is %v", bad.Status, bad.StatusReason, childOf(bad.Handle), live["source.bad"][0].id)
	}
	for _, a := range []string{"source.good", "sink.after-good"} {
		if recs[a].Status != "running" {
			t.Errorf("%s: %s", a, recs[a].Status)
		}
	}
	if r := f.must(0, "state", "show", "source.bad"); !strings.Contains(r.out, "failed (not ready: health check failed") {
		t.Errorf("state show does not say why\n%s", r)
	}

	want := []string{"create processor.after-bad (not_in_state)", "create sink.after-after (not_in_state)", "replace source.bad (tainted)"}
	if got := f.plan().actions(); !slices.Equal(got, want) {
		t.Fatalf("plan after the failure: %v, want %v", got, want)
	}
	if r := f.run("plan"); !strings.Contains(r.out, "source.bad must be replaced (its last start never became ready)") {
		t.Errorf("human plan\n%s", r)
	}

	// Fixed: one apply replaces it and starts what waited for it.
	cs[0].env["TC_NEVER_HEALTHY"] = "0"
	f.writePipeline(cs)
	f.apply()
	f.assertConverged(addrs(cs))
}
