package apply_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/plan"
)

// TestJSONStreamReportsEachChangeAndItsFailure applies a chain whose
// middle component fails to start: the stream says which started, which
// completed, which failed and which were never started, one JSON object
// per line, and its summary names the failures.
func TestJSONStreamReportsEachChangeAndItsFailure(t *testing.T) {
	r := newRig(t)
	r.fake.FailStart("processor.b", errors.New("no such image"))
	desired := load(t, chain)
	p := r.plan(desired, plan.Options{})
	var out bytes.Buffer
	stream := apply.NewJSONStream(&out)
	stream.Emit(apply.StartEvent(p, "apply"))
	start := time.Now()
	res, err := r.eng.Apply(t.Context(), nil, p, desired, apply.Options{Events: stream.Emit, Operation: "apply"})
	stream.Emit(apply.SummaryEvent(res, "apply", time.Since(start), err))
	if !errors.Is(err, apply.ErrFailed) {
		t.Fatalf("err = %v", err)
	}

	var got []string
	var last apply.Event
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev apply.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if ev.Operation != "apply" || ev.Time.IsZero() {
			t.Errorf("event without operation or time: %s", line)
		}
		got = append(got, ev.Type+" "+ev.Address)
		last = ev
	}
	want := []string{
		"start ",
		"change_start source.a", "change_complete source.a",
		"change_start processor.b", "change_error processor.b",
		"change_skipped sink.c",
		"summary ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if last.OK == nil || *last.OK || last.Counts["added"] != 1 || len(last.Failed) != 2 ||
		!strings.Contains(last.Failed[0].Error+last.Failed[1].Error, "no such image") {
		t.Fatalf("summary %+v", last)
	}
	if !stream.Emitted(apply.EventSummary) || stream.Emitted(apply.EventError) {
		t.Error("Emitted does not say what was written")
	}
}

// TestStreamReportsAnOperationThatCouldNotRun: an error before the walk
// (a stale plan, a held lock) is an error event, then a summary not ok.
func TestStreamReportsAnOperationThatCouldNotRun(t *testing.T) {
	var out bytes.Buffer
	err := apply.Stream(&out, "destroy", func(*apply.JSONStream) error { return errors.New("the state is locked") })
	if err == nil {
		t.Fatal("Stream swallowed the error")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var evs []apply.Event
	for _, l := range lines {
		var ev apply.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	if len(evs) != 2 || evs[0].Type != apply.EventError || evs[0].Message != "the state is locked" ||
		evs[1].Type != apply.EventSummary || evs[1].OK == nil || *evs[1].OK || evs[1].Operation != "destroy" {
		t.Fatalf("stream:\n%s", out.String())
	}
}
