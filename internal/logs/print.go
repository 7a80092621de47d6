package logs

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"
)

// Format says how a Printer renders lines.
type Format struct {
	// Prefix starts each line with its component's address.
	Prefix bool
	// Color paints the prefix in the component's colour (Color).
	Color bool
	// Timestamps starts each line's text with its time.
	Timestamps bool
	// JSON prints one object per line: {time, component, stream, line};
	// the other fields do not apply.
	JSON bool
}

// palette holds the ANSI colours of prefixes: no red (errors), no black or
// white (backgrounds).
var palette = []string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"}

// Color is the ANSI colour of a component's prefix: the same for an
// address in every run, whatever else the pipeline holds.
func Color(addr string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(addr))
	return palette[h.Sum32()%uint32(len(palette))]
}

// Printer writes lines in a Format.
type Printer struct {
	w     io.Writer
	f     Format
	width int
}

// NewPrinter prints to w; prefixes are padded to the longest of addrs (and
// grow when a longer one comes).
func NewPrinter(w io.Writer, f Format, addrs []string) *Printer {
	p := &Printer{w: w, f: f}
	for _, a := range addrs {
		p.width = max(p.width, len(a))
	}
	return p
}

// Print writes one line.
func (p *Printer) Print(l Line) error {
	if p.f.JSON {
		b, err := json.Marshal(struct {
			Time      string `json:"time"`
			Component string `json:"component"`
			Stream    string `json:"stream"`
			Line      string `json:"line"`
		}{l.Time.UTC().Format(time.RFC3339Nano), l.Component, l.Stream, l.Text})
		if err != nil {
			return fmt.Errorf("encode log line: %w", err)
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	var b strings.Builder
	if p.f.Prefix {
		p.width = max(p.width, len(l.Component))
		pad := strings.Repeat(" ", p.width-len(l.Component))
		if p.f.Color {
			fmt.Fprintf(&b, "\x1b[%sm%s%s |\x1b[0m ", Color(l.Component), l.Component, pad)
		} else {
			fmt.Fprintf(&b, "%s%s | ", l.Component, pad)
		}
	}
	if p.f.Timestamps {
		b.WriteString(l.Time.UTC().Format(timestampLayout))
		b.WriteByte(' ')
	}
	if l.Stream == StreamMarker && p.f.Color {
		b.WriteString("\x1b[1m" + l.Text + "\x1b[0m")
	} else {
		b.WriteString(l.Text)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(p.w, b.String())
	return err
}

// timestampLayout is fixed width, so that the text of every line starts
// in the same column.
const timestampLayout = "2006-01-02T15:04:05.000000000Z07:00"

// ParseSince reads --since: a duration back from now ("10m", "1h30m"), an
// RFC 3339 time, or a local date and time ("2006-01-02 15:04:05",
// "2006-01-02T15:04", "2006-01-02").
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a duration back from now must not be negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (10m, 1h30m) or a time (2006-01-02T15:04:05Z, 2006-01-02 15:04:05, 2006-01-02)", s)
}
