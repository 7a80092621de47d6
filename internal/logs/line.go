package logs

import (
	"fmt"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// Streams of a Line. Executors report stdout and stderr (and the process
// executor "flowctl" for its own notes); markers are this package's.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamMarker = "marker"
)

// Line is one line of one component's log.
type Line struct {
	Time      time.Time `json:"time"`
	Component string    `json:"component"`
	Stream    string    `json:"stream"`
	Text      string    `json:"line"`
	// kind tells the markers that begin and end a component's life from
	// those of a new instance.
	kind markerKind
}

// markerKind is what a marker line marks.
type markerKind int

const (
	markerInstance markerKind = iota // a restart or replacement: a new instance
	markerCreated                    // an apply created the component
	markerRemoved                    // a destroy or an apply removed it
)

// ParseLine parses a line as Reader.Logs returns it with Timestamps:
// "<RFC 3339 time> <stream> <text>". ok is false when s does not start with
// a time; the line is then all text, on stdout.
func ParseLine(component, s string) (l Line, ok bool) {
	l = Line{Component: component, Stream: StreamStdout, Text: s}
	ts, rest, found := strings.Cut(s, " ")
	if !found {
		ts, rest = s, ""
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return l, false
	}
	l.Time = t
	stream, text, found := strings.Cut(rest, " ")
	if stream == "" {
		return l, true
	}
	l.Stream, l.Text = stream, text
	if !found {
		l.Text = ""
	}
	return l, true
}

// MarkerText is the marker line a history event puts in its component's
// log, when the event started or ended an instance: a restart by the
// watcher ("--- restarted (exited code=2), attempt 3 ---"), a replacement
// by an apply ("--- replaced (spec changed) ---"), the removal of the
// component ("--- destroyed ---", "--- removed by apply (not in config)
// ---") and its creation again ("--- created by apply ---"). Other events
// make none.
func MarkerText(e *state.Event) (string, bool) {
	m, ok := markerOf(e)
	return m.Text, ok
}

// markerOf is the marker line of e, at e's time.
func markerOf(e *state.Event) (Line, bool) {
	if e.Address == "" {
		return Line{}, false
	}
	m := Line{Time: e.Time, Component: e.Address, Stream: StreamMarker}
	if !e.StartedAt.IsZero() && e.StartedAt.Before(e.Time) {
		// An apply records its event once the instance is ready: the
		// marker goes where the instance began.
		m.Time = e.StartedAt
	}
	switch {
	case e.Operation == "restart":
		if e.Attempt > 0 {
			m.Text = fmt.Sprintf("--- restarted (%s), attempt %d ---", orUnknown(e.Reason), e.Attempt)
		} else {
			m.Text = fmt.Sprintf("--- restarted (%s) ---", orUnknown(e.Reason))
		}
	case e.Action == "replace":
		m.Text = fmt.Sprintf("--- replaced (%s) ---", humanReason(e.Reason))
	case e.Action == "restart":
		m.Text = fmt.Sprintf("--- started again by %s (%s) ---", e.Operation, humanReason(e.Reason))
	case e.Action == "create":
		m.Text, m.kind = fmt.Sprintf("--- created by %s ---", e.Operation), markerCreated
	case e.Action == "delete" && e.Result != "" && e.Result != "ok":
		return Line{}, false // still there
	case e.Action == "delete" && e.Operation == "destroy":
		m.Text, m.kind = "--- destroyed ---", markerRemoved
	case e.Action == "delete":
		m.Text, m.kind = fmt.Sprintf("--- removed by %s (%s) ---", e.Operation, humanReason(e.Reason)), markerRemoved
	default:
		return Line{}, false
	}
	return m, true
}

// newInstanceText is the marker of a new instance that no history event
// explains (yet: an apply records its event once the instance is ready).
func newInstanceText(specChanged bool) string {
	if specChanged {
		return "--- replaced (spec changed) ---"
	}
	return "--- new instance ---"
}

// humanReason turns a plan reason ("spec_changed") into words.
func humanReason(r string) string { return strings.ReplaceAll(orUnknown(r), "_", " ") }

func orUnknown(s string) string {
	if s == "" {
		return "unknown reason"
	}
	return s
}
