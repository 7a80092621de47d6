package logs

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
	"github.com/flowctl/flowctl/internal/state"
)

func TestParseLineReadsEveryExecutorsForm(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Line
		ok   bool
	}{
		// The process executor: fixed width, trailing zeros kept.
		{"2025-03-01T12:00:00.100000000Z stdout hello world", Line{Time: at(100), Stream: "stdout", Text: "hello world"}, true},
		// Docker: the engine's RFC 3339 with trimmed nanoseconds.
		{"2025-03-01T12:00:00.1Z stderr oops", Line{Time: at(100), Stream: "stderr", Text: "oops"}, true},
		{"2025-03-01T12:00:00Z flowctl 3 log lines dropped", Line{Time: t0, Stream: "flowctl", Text: "3 log lines dropped"}, true},
		{"2025-03-01T12:00:00Z stdout ", Line{Time: t0, Stream: "stdout", Text: ""}, true},
		{"2025-03-01T12:00:00Z stdout", Line{Time: t0, Stream: "stdout", Text: ""}, true},
		{"no time here", Line{Stream: "stdout", Text: "no time here"}, false},
		{"", Line{Stream: "stdout"}, false},
	} {
		got, ok := ParseLine("source.a", tc.in)
		tc.want.Component = "source.a"
		if ok != tc.ok || !got.Time.Equal(tc.want.Time) || got.Stream != tc.want.Stream || got.Text != tc.want.Text {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMarkerTextSpellsRestartsReplacementsAndRemovals(t *testing.T) {
	for _, tc := range []struct {
		e    state.Event
		want string
	}{
		{state.Event{Operation: "restart", Address: "source.a", Reason: "exited code=2", Attempt: 3}, "--- restarted (exited code=2), attempt 3 ---"},
		{state.Event{Operation: "restart", Address: "source.a", Reason: "liveness failed 3×", Attempt: 1}, "--- restarted (liveness failed 3×), attempt 1 ---"},
		{state.Event{Operation: "restart", Address: "source.a", Reason: "heartbeat missed for 31s"}, "--- restarted (heartbeat missed for 31s) ---"},
		{state.Event{Operation: "apply", Address: "source.a", Action: "replace", Reason: "spec_changed"}, "--- replaced (spec changed) ---"},
		{state.Event{Operation: "apply", Address: "source.a", Action: "restart", Reason: "exited"}, "--- started again by apply (exited) ---"},
		{state.Event{Operation: "apply", Address: "source.a", Action: "create"}, "--- created by apply ---"},
		{state.Event{Operation: "run", Address: "source.a", Action: "create", Result: "failed"}, "--- created by run ---"},
		{state.Event{Operation: "destroy", Address: "source.a", Action: "delete", Reason: "destroy_requested"}, "--- destroyed ---"},
		{state.Event{Operation: "apply", Address: "source.a", Action: "delete", Reason: "not_in_config"}, "--- removed by apply (not in config) ---"},
		{state.Event{Operation: "destroy", Address: "source.a", Action: "delete", Result: "failed"}, ""},
		{state.Event{Operation: "apply", Address: "source.a", Action: "adopt"}, ""},
		{state.Event{Operation: "apply", Address: "source.a", Action: "update"}, ""},
		{state.Event{Operation: "restart"}, ""},
	} {
		got, ok := MarkerText(&tc.e)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%+v: %q %v, want %q", tc.e, got, ok, tc.want)
		}
	}
}

// backlogOf runs Run without following over logs by address, each the
// sole instance of its component.
func backlogOf(t *testing.T, opts Options, inv *fakeInventory, ex *providertest.Provider) []string {
	t.Helper()
	var c collector
	if err := Run(context.Background(), inv, readersOf(ex), opts, c.emit); err != nil {
		t.Fatal(err)
	}
	return c.texts()
}

func twoComponents() (*fakeInventory, *providertest.Provider) {
	ex := providertest.New("fake")
	ex.SetLog(providers.Handle("a1"), providertest.NewLog(
		stamp(at(0), "stdout", "a first"),
		stamp(at(20), "stderr", "a second"),
		stamp(at(20), "stdout", "a third, same time"),
		stamp(at(50), "stdout", "a fourth"),
	))
	ex.SetLog(providers.Handle("b1"), providertest.NewLog(
		stamp(at(10), "stdout", "b first"),
		stamp(at(20), "stdout", "b second, same time as a's"),
		stamp(at(60), "stdout", "b third"),
	))
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a1"), InstanceID: "a-1"})
	inv.put(Instance{Address: "sink.b", Provider: "fake", Handle: providers.Handle("b1"), InstanceID: "b-1"})
	return inv, ex
}

func TestBacklogMergesComponentsByTimeAndKeepsEachLogsOrder(t *testing.T) {
	inv, ex := twoComponents()
	got := backlogOf(t, Options{Tail: -1}, inv, ex)
	want := []string{
		"source.a: a first",
		"sink.b: b first",
		"sink.b: b second, same time as a's", // ties go by address: sink.b < source.a
		"source.a: a second",
		"source.a: a third, same time",
		"source.a: a fourth",
		"sink.b: b third",
	}
	sameLines(t, got, want)
}

func TestBacklogOfNamedComponentsOnly(t *testing.T) {
	inv, ex := twoComponents()
	got := backlogOf(t, Options{Tail: -1, Addresses: []string{"sink.b"}}, inv, ex)
	if len(got) != 3 || !strings.HasPrefix(got[0], "sink.b: ") {
		t.Fatalf("got %q", got)
	}
	var c collector
	err := Run(context.Background(), inv, readersOf(ex), Options{Tail: -1, Addresses: []string{"sink.nope"}}, c.emit)
	if err == nil || !strings.Contains(err.Error(), "sink.nope") {
		t.Fatalf("unknown address: %v", err)
	}
}

func TestSinceAndTailGoToEachExecutorAndTailCountsPerComponent(t *testing.T) {
	inv, ex := twoComponents()
	got := backlogOf(t, Options{Tail: 1}, inv, ex)
	if want := []string{"source.a: a fourth", "sink.b: b third"}; !slices.Equal(got, want) {
		t.Fatalf("tail 1: %q, want %q", got, want)
	}
	for _, o := range ex.LogRequests() {
		if o.Tail != 1 || !o.Timestamps || o.Follow {
			t.Fatalf("asked %+v", o)
		}
	}

	inv, ex = twoComponents()
	got = backlogOf(t, Options{Tail: -1, Since: at(20)}, inv, ex)
	if len(got) != 5 || got[0] != "sink.b: b second, same time as a's" {
		t.Fatalf("since: %q", got)
	}
	for _, o := range ex.LogRequests() {
		if o.Tail != 0 || !o.Since.Equal(at(20)) {
			t.Fatalf("asked %+v", o)
		}
	}

	inv, ex = twoComponents()
	if got := backlogOf(t, Options{Tail: 0}, inv, ex); len(got) != 0 || len(ex.LogRequests()) != 0 {
		t.Fatalf("tail 0 read %d logs, printed %q", len(ex.LogRequests()), got)
	}
}

func TestBacklogPutsReplacementMarkerBeforeTheNewInstancesFirstLine(t *testing.T) {
	ex := providertest.New("fake")
	// One log file across instances, as the process executor keeps it.
	ex.SetLog(providers.Handle("a2"), providertest.NewLog(
		stamp(at(0), "stdout", "old starting"),
		stamp(at(100), "stdout", "old received terminated"),
		stamp(at(210), "stdout", "new starting"),
		stamp(at(230), "stdout", "new ready"),
		stamp(at(400), "stdout", "new working"),
	))
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a2"), InstanceID: "a-2", StartedAt: at(205)})
	// apply records the replacement once the new instance is ready.
	inv.event(Line{Time: at(300), Component: "source.a", Stream: StreamMarker, Text: "--- replaced (spec changed) ---"})
	got := backlogOf(t, Options{Tail: -1}, inv, ex)
	want := []string{
		"source.a: old starting",
		"source.a: old received terminated",
		"source.a: --- replaced (spec changed) ---",
		"source.a: new starting",
		"source.a: new ready",
		"source.a: new working",
	}
	sameLines(t, got, want)
}

// eventMarker is the marker StateInventory makes of a history event.
func eventMarker(t *testing.T, e state.Event) Line {
	t.Helper()
	m, ok := markerOf(&e)
	if !ok {
		t.Fatalf("no marker for %+v", e)
	}
	return m
}

func TestBacklogSeparatesTheRunsOfAComponentDestroyedAndAppliedAgain(t *testing.T) {
	ex := providertest.New("fake")
	// One log file across runs, as the process executor keeps it; apply
	// records each creation once the instance is ready, after its first
	// lines.
	ex.SetLog(providers.Handle("a3"), providertest.NewLog(
		stamp(at(0), "stdout", "run 1 starting"),
		stamp(at(50), "stdout", "run 1 ready"),
		stamp(at(90), "stdout", "run 1 terminated"),
		stamp(at(210), "stdout", "run 2 starting"),
		stamp(at(250), "stdout", "run 2 ready"),
		stamp(at(410), "stdout", "run 3 starting"),
		stamp(at(450), "stdout", "run 3 ready"),
	))
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a3"), InstanceID: "a-3", StartedAt: at(405)})
	for _, e := range []state.Event{
		{Time: at(60), Operation: "apply", Address: "source.a", Action: "create", Result: "ok"},
		{Time: at(100), Operation: "destroy", Address: "source.a", Action: "delete", Reason: "destroy_requested", Result: "ok"},
		{Time: at(260), Operation: "apply", Address: "source.a", Action: "create", Result: "ok"},
		{Time: at(300), Operation: "destroy", Address: "source.a", Action: "delete", Reason: "destroy_requested", Result: "ok"},
		{Time: at(460), Operation: "run", Address: "source.a", Action: "create", Result: "ok"},
	} {
		inv.event(eventMarker(t, e))
	}
	got := backlogOf(t, Options{Tail: -1}, inv, ex)
	want := []string{
		"source.a: run 1 starting",
		"source.a: run 1 ready",
		"source.a: run 1 terminated",
		"source.a: --- destroyed ---",
		"source.a: --- created by apply ---",
		"source.a: run 2 starting",
		"source.a: run 2 ready",
		"source.a: --- destroyed ---",
		"source.a: --- created by run ---",
		"source.a: run 3 starting",
		"source.a: run 3 ready",
	}
	sameLines(t, got, want)
}

func TestBacklogDropsMarkersOfLinesNoLongerShown(t *testing.T) {
	ex := providertest.New("fake")
	ex.SetLog(providers.Handle("a3"), providertest.NewLog(
		stamp(at(0), "stdout", "first life"),
		stamp(at(200), "stdout", "second life"),
		stamp(at(400), "stdout", "third life"),
	))
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a3"), InstanceID: "a-3", StartedAt: at(390)})
	inv.event(Line{Time: at(190), Component: "source.a", Stream: StreamMarker, Text: "--- restarted (exited code=1), attempt 1 ---"})
	inv.event(Line{Time: at(390), Component: "source.a", Stream: StreamMarker, Text: "--- restarted (exited code=1), attempt 2 ---"})
	inv.event(Line{Time: at(395), Component: "sink.gone", Stream: StreamMarker, Text: "--- restarted (exited code=1), attempt 1 ---"})

	got := backlogOf(t, Options{Tail: -1}, inv, ex)
	want := []string{
		"source.a: first life",
		"source.a: --- restarted (exited code=1), attempt 1 ---",
		"source.a: second life",
		"source.a: --- restarted (exited code=1), attempt 2 ---",
		"source.a: third life",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("all: got\n%s", strings.Join(got, "\n"))
	}
	got = backlogOf(t, Options{Tail: 2}, inv, ex)
	if want := want[2:]; !slices.Equal(got, want) {
		t.Fatalf("tail 2: got\n%s", strings.Join(got, "\n"))
	}
}

func TestABrokenLogIsReportedAndTheOthersStillShown(t *testing.T) {
	inv, ex := twoComponents()
	inv.put(Instance{Address: "processor.x", Provider: "nomad", Handle: providers.Handle("x")})
	var warned []string
	var c collector
	opts := Options{Tail: -1, Warn: func(addr string, err error) { warned = append(warned, addr+": "+err.Error()) }}
	if err := Run(context.Background(), inv, readersOf(ex), opts, c.emit); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], `no executor "nomad"`) || len(c.texts()) != 7 {
		t.Fatalf("warned %q, printed %d lines", warned, len(c.texts()))
	}
}

func TestResumingALogSkipsExactlyWhatWasShown(t *testing.T) {
	var p position
	for _, ms := range []int{0, 10, 10, 10} {
		p.saw(at(ms))
	}
	if !p.last.Equal(at(10)) || p.n != 3 {
		t.Fatalf("position %+v", p)
	}
	r := p.resume()
	var kept []int
	// Read again since at(10): three lines at 10 were shown, a fourth was
	// written after the first read, and more later.
	for _, ms := range []int{10, 10, 10, 10, 11, 10} {
		if !r.seen(at(ms)) {
			kept = append(kept, ms)
		}
	}
	if !slices.Equal(kept, []int{10, 11, 10}) {
		t.Fatalf("kept %v", kept)
	}
	if got := p.then(position{last: at(10), n: 1}); got.n != 4 {
		t.Fatalf("then same time: %+v", got)
	}
	if got := p.then(position{}); got != p {
		t.Fatalf("then nothing: %+v", got)
	}
	if got := p.then(position{last: at(11), n: 1}); !got.last.Equal(at(11)) || got.n != 1 {
		t.Fatalf("then later: %+v", got)
	}
}

func TestHoldbackOrdersLinesThatArriveOutOfOrder(t *testing.T) {
	b := &holdback{lag: 500 * time.Millisecond, maxHold: 2 * time.Second}
	now := at(1000)
	b.advance(at(900))
	b.add(Line{Time: at(300), Component: "sink.b", Text: "b late"}, rankLine, 1, now)
	b.add(Line{Time: at(200), Component: "source.a", Text: "a"}, rankLine, 0, now)
	b.add(Line{Time: at(600), Component: "source.a", Text: "a recent"}, rankLine, 0, now)
	got := texts(b.ready(now))
	if want := []string{"a", "b late"}; !slices.Equal(got, want) {
		t.Fatalf("ready %q, want %q (a recent waits for state read at 1.1s)", got, want)
	}
	// The instance of "b new" started at 550; its marker comes with the
	// state read that shows it.
	b.add(Line{Time: at(560), Component: "sink.b", Text: "b new"}, rankLine, 1, now)
	b.add(Line{Time: at(550), Component: "sink.b", Stream: StreamMarker, Text: "--- restarted ---"}, rankMarker, 1, now)
	b.advance(at(1100))
	got = texts(b.ready(now))
	if want := []string{"--- restarted ---", "b new", "a recent"}; !slices.Equal(got, want) {
		t.Fatalf("ready %q, want %q", got, want)
	}
}

func TestHoldbackReleasesAfterMaxHoldWhenStateCannotBeRead(t *testing.T) {
	b := &holdback{lag: 500 * time.Millisecond, maxHold: 2 * time.Second}
	b.add(Line{Time: at(0), Text: "x"}, rankLine, 0, at(0))
	if got := b.ready(at(1999)); len(got) != 0 {
		t.Fatalf("released early: %q", texts(got))
	}
	if got := b.ready(at(2000)); len(got) != 1 {
		t.Fatal("not released after max hold")
	}
}

func TestHoldbackPutsAMarkerBeforeALineOfTheSameTime(t *testing.T) {
	b := &holdback{lag: time.Millisecond, maxHold: time.Second}
	b.add(Line{Time: at(5), Component: "source.a", Text: "line"}, rankLine, 0, at(0))
	b.add(Line{Time: at(5), Component: "source.a", Text: "marker"}, rankMarker, 0, at(0))
	if got := texts(b.flush()); !slices.Equal(got, []string{"marker", "line"}) {
		t.Fatalf("%q", got)
	}
}

func texts(ls []Line) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Text)
	}
	return out
}

func TestPrinterPrefixesPadsAndColoursOnlyWhenAsked(t *testing.T) {
	lines := []Line{
		{Time: at(0), Component: "source.a", Stream: "stdout", Text: "hello"},
		{Time: at(1), Component: "processor.long", Stream: StreamMarker, Text: "--- restarted (exited code=2), attempt 3 ---"},
	}
	render := func(f Format) string {
		var buf bytes.Buffer
		p := NewPrinter(&buf, f, []string{"source.a", "processor.long"})
		for _, l := range lines {
			if err := p.Print(l); err != nil {
				t.Fatal(err)
			}
		}
		return buf.String()
	}
	if got, want := render(Format{Prefix: true}), "source.a       | hello\nprocessor.long | --- restarted (exited code=2), attempt 3 ---\n"; got != want {
		t.Errorf("plain:\n%s\nwant\n%s", got, want)
	}
	if got := render(Format{Prefix: true}); strings.Contains(got, "\x1b") {
		t.Errorf("colour without Color: %q", got)
	}
	if got, want := render(Format{}), "hello\n--- restarted (exited code=2), attempt 3 ---\n"; got != want {
		t.Errorf("no prefix: %q", got)
	}
	if got, want := render(Format{Timestamps: true}), "2025-03-01T12:00:00.000000000Z hello\n2025-03-01T12:00:00.001000000Z --- restarted (exited code=2), attempt 3 ---\n"; got != want {
		t.Errorf("timestamps: %q", got)
	}
	coloured := render(Format{Prefix: true, Color: true})
	if !strings.Contains(coloured, "\x1b["+Color("source.a")+"msource.a       |\x1b[0m hello\n") {
		t.Errorf("colour: %q", coloured)
	}
	if got := render(Format{JSON: true, Prefix: true, Color: true}); got != `{"time":"2025-03-01T12:00:00Z","component":"source.a","stream":"stdout","line":"hello"}`+"\n"+
		`{"time":"2025-03-01T12:00:00.001Z","component":"processor.long","stream":"marker","line":"--- restarted (exited code=2), attempt 3 ---"}`+"\n" {
		t.Errorf("json: %s", got)
	}
}

func TestColourIsStablePerComponentAndSpreadsOverThePalette(t *testing.T) {
	if Color("source.ledger") != Color("source.ledger") {
		t.Fatal("unstable")
	}
	seen := map[string]bool{}
	for _, a := range []string{"source.a", "source.b", "processor.c", "processor.d", "sink.e", "sink.f", "sink.g", "source.h"} {
		c := Color(a)
		if !slices.Contains(palette, c) || c == "31" || c == "91" {
			t.Fatalf("%s: colour %s", a, c)
		}
		seen[c] = true
	}
	if len(seen) < 4 {
		t.Fatalf("8 components share %d colours", len(seen))
	}
}

func TestParseSinceTakesDurationsAndTimes(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, loc)
	for in, want := range map[string]time.Time{
		"10m":                            now.Add(-10 * time.Minute),
		"1h30m":                          now.Add(-90 * time.Minute),
		"0s":                             now,
		"2025-03-01T10:00:00Z":           time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		"2025-03-01T10:00:00.5+02:00":    time.Date(2025, 3, 1, 8, 0, 0, 5e8, time.UTC),
		"2025-03-01 11:30:00":            time.Date(2025, 3, 1, 11, 30, 0, 0, loc),
		"2025-03-01T11:30":               time.Date(2025, 3, 1, 11, 30, 0, 0, loc),
		"2025-02-28":                     time.Date(2025, 2, 28, 0, 0, 0, 0, loc),
		"2025-03-01T11:30:00.123456789Z": time.Date(2025, 3, 1, 11, 30, 0, 123456789, time.UTC),
	} {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-5m", "yesterday", "2025-13-01", ""} {
		if _, err := ParseSince(in, now); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestRunFailsWhenStateCannotBeRead(t *testing.T) {
	var c collector
	err := Run(context.Background(), brokenInventory{}, nil, Options{}, c.emit)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("%v", err)
	}
}

type brokenInventory struct{}

func (brokenInventory) Snapshot(context.Context, uint64) (Snapshot, error) {
	return Snapshot{}, errors.New("read state: disk on fire")
}

// sameLines fails t unless got is want, line for line.
func sameLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
