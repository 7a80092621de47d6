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
}

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
// log, when the event started a new instance: a restart by the watcher
// ("--- restarted (exited code=2), attempt 3 ---") or a replacement by an
// apply ("--- replaced (spec changed) ---"). Other events make none.
func MarkerText(e *state.Event) (string, bool) {
	if e.Address == "" {
		return "", false
	}
	switch {
	case e.Operation == "restart":
		if e.Attempt > 0 {
			return fmt.Sprintf("--- restarted (%s), attempt %d ---", orUnknown(e.Reason), e.Attempt), true
		}
		return fmt.Sprintf("--- restarted (%s) ---", orUnknown(e.Reason)), true
	case e.Action == "replace":
		return fmt.Sprintf("--- replaced (%s) ---", humanReason(e.Reason)), true
	case e.Action == "restart":
		return fmt.Sprintf("--- started again by %s (%s) ---", e.Operation, humanReason(e.Reason)), true
	}
	return "", false
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
