package providertest

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
)

// Log is one object's log: lines as executors return them with
// Timestamps, "<RFC 3339 time> <stream> <text>". Lines may be added while
// the log is followed; End ends the followers' streams, as a stopped
// container's log does.
type Log struct {
	mu    sync.Mutex
	lines []string
	ended bool
	grew  chan struct{} // closed and replaced on every change
	// delivered counts the lines readers have taken in: a pipe write
	// returns once the reader has the bytes.
	delivered atomic.Int64
}

// NewLog returns a log holding lines.
func NewLog(lines ...string) *Log {
	return &Log{lines: slices.Clone(lines), grew: make(chan struct{})}
}

// Add appends lines.
func (l *Log) Add(lines ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, lines...)
	l.changed()
}

// End makes every follower's stream end once it has the lines so far.
func (l *Log) End() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
	l.changed()
}

// changed wakes the followers; the caller holds l.mu.
func (l *Log) changed() {
	close(l.grew)
	l.grew = make(chan struct{})
}

// Delivered is how many lines readers have taken in so far.
func (l *Log) Delivered() int64 { return l.delivered.Load() }

// lineTime is a line's timestamp; zero when it has none.
func lineTime(s string) time.Time {
	ts, _, _ := strings.Cut(s, " ")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}
	}
	return t
}

// backlog is what a reader gets at once: the lines at or after Since, the
// last Tail of them; and how many lines the log held then.
func (l *Log) backlog(opts providers.LogOptions) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if opts.Since.IsZero() || !lineTime(s).Before(opts.Since) {
			out = append(out, s)
		}
	}
	if opts.Tail > 0 && len(out) > opts.Tail {
		out = out[len(out)-opts.Tail:]
	}
	return out, len(l.lines)
}

// open streams the log as an executor's Logs does: the backlog, then, when
// following, every line added until End, ctx ends or the reader is closed.
func (l *Log) open(ctx context.Context, opts providers.LogOptions) io.ReadCloser {
	backlog, seen := l.backlog(opts)
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		if !l.write(pw, backlog) || !opts.Follow {
			_ = pw.Close()
			return
		}
		l.follow(ctx, pw, seen)
	}()
	return &cancelReader{PipeReader: pr, cancel: cancel}
}

// follow writes the lines after the first seen as they come.
func (l *Log) follow(ctx context.Context, pw *io.PipeWriter, seen int) {
	for {
		l.mu.Lock()
		more, ended, grew := slices.Clone(l.lines[seen:]), l.ended, l.grew
		seen = len(l.lines)
		l.mu.Unlock()
		if !l.write(pw, more) {
			return
		}
		if ended {
			_ = pw.Close()
			return
		}
		select {
		case <-grew:
		case <-ctx.Done():
			_ = pw.Close()
			return
		}
	}
}

// write writes lines to pw; false once the reader is gone.
func (l *Log) write(pw *io.PipeWriter, lines []string) bool {
	for _, s := range lines {
		if _, err := io.WriteString(pw, s+"\n"); err != nil {
			return false
		}
		l.delivered.Add(1)
	}
	return true
}

// cancelReader ends its writer when closed.
type cancelReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *cancelReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}
