// Command file-sink is an example flowctl sink built on pkg/component: it
// appends every event it consumes to a file as one JSON line (NDJSON), and
// writes an event id once: a replayed event (delivery is at-least-once) is
// skipped.
//
// A line is
//
//	{"id":"counter-7","type":"counter.tick","source":"counter","time":"2025-01-02T03:04:05.123456789Z","content_type":"application/json","metadata":{"resume_token":"7"},"payload":{"seq":7,"source":"counter"}}
//
// with the payload inline when it is JSON, else as "payload_base64".
//
// The ids already written are read back from the file at start, so
// de-duplication holds across restarts; a torn last line (a crash in the
// middle of a write) is cut off first. Lines are buffered and written out
// every FILE_SINK_FLUSH_INTERVAL, and synced to disk whenever a Consume
// stream ends, before it is acknowledged: an acknowledged event is on disk.
// The ids seen are kept in memory (about 50 bytes each).
//
// Environment, besides what pkg/component reads (FLOWCTL_COMPONENT_ID,
// PORT, HEALTH_PORT, ENABLE_FLOWCTL, FLOWCTL_ENDPOINT,
// FLOWCTL_COMPONENT_TOKEN, FLOWCTL_HEARTBEAT_INTERVAL,
// FLOWCTL_DATA_PLANE_KEY, FLOWCTL_BIND_ADDRESS; run by hand, without
// flowctl, it needs FLOWCTL_DATA_PLANE_INSECURE=true, see
// docs/data-plane-auth.md):
//
//	FILE_SINK_PATH            the file (default "out/events.ndjson"; its folder is created)
//	FILE_SINK_FLUSH_INTERVAL  Go duration between writes of buffered lines (default 200ms)
//	FILE_SINK_DELAY           Go duration the sink waits before taking each event (default 0):
//	                          a slow sink, to see backpressure hold its sources back
//	LOG_LEVEL                 debug, info (default), warn or error
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowctl/flowctl/pkg/component"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	if err := run(log); err != nil {
		log.Error("file-sink", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	path := os.Getenv("FILE_SINK_PATH")
	if path == "" {
		path = "out/events.ndjson"
	}
	every := 200 * time.Millisecond
	if v := os.Getenv("FILE_SINK_FLUSH_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("FILE_SINK_FLUSH_INTERVAL=%q: want a positive Go duration", v)
		}
		every = d
	}
	var delay time.Duration
	if v := os.Getenv("FILE_SINK_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("FILE_SINK_DELAY=%q: want a Go duration, 0 or more", v)
		}
		delay = d
	}
	sink, err := openSink(path)
	if err != nil {
		return err
	}
	sink.delay = delay
	log.Info("file-sink", "path", path, "ids_on_file", len(sink.seen), "delay", delay)
	stopFlushing := sink.flushEvery(every, log)
	c, err := component.New(component.FromEnv(), component.Info{
		Name: "file-sink", Description: "appends events to an NDJSON file, once per id", Version: "1",
	}, component.WithSink(sink), component.WithLogger(log))
	if err == nil {
		err = c.Run(context.Background())
	}
	stopFlushing()
	written, dupes := sink.counts()
	log.Info("file-sink closed", "written", written, "duplicates_skipped", dupes)
	return errors.Join(err, sink.Close())
}

// sink appends events to a file, each id once.
type sink struct {
	delay time.Duration // before each event

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	seen    map[string]struct{}
	written int64
	dupes   int64
}

// line is one event as written.
type line struct {
	ID            string            `json:"id"`
	Type          string            `json:"type,omitempty"`
	Source        string            `json:"source,omitempty"`
	Time          string            `json:"time,omitempty"`
	ContentType   string            `json:"content_type,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 []byte            `json:"payload_base64,omitempty"`
}

// openSink opens (or creates) the file, collects the ids it holds and
// cuts off a torn last line.
func openSink(path string) (*sink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("file sink folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open file sink: %w", err)
	}
	s := &sink{f: f, seen: map[string]struct{}{}}
	good, err := s.readIDs()
	if err == nil {
		err = s.cutAfter(good)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("file sink %s: %w", path, err)
	}
	s.w = bufio.NewWriterSize(f, 64<<10)
	return s, nil
}

// readIDs adds the id of every complete line to seen and returns the
// length of the file's complete lines.
func (s *sink) readIDs() (int64, error) {
	r := bufio.NewReaderSize(s.f, 64<<10)
	var good int64
	for {
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return good, nil // b, if any, is a torn line
		}
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
		good += int64(len(b))
		var l struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(b, &l) == nil && l.ID != "" {
			s.seen[l.ID] = struct{}{}
		}
	}
}

// cutAfter truncates the file to size when it is longer.
func (s *sink) cutAfter(size int64) error {
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == size {
		return nil
	}
	if err := s.f.Truncate(size); err != nil {
		return fmt.Errorf("cut torn last line: %w", err)
	}
	return nil
}

// Consume buffers ev's line unless its id was written before.
func (s *sink) Consume(ctx context.Context, ev *component.Event) error {
	if s.delay > 0 {
		t := time.NewTimer(s.delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := ev.GetId()
	if _, dup := s.seen[id]; dup && id != "" {
		s.dupes++
		return nil
	}
	l := line{ID: id, Type: ev.GetType(), Source: ev.GetSourceComponentId(), ContentType: ev.GetContentType(), Metadata: ev.GetMetadata()}
	if ts := ev.GetTimestamp(); ts != nil {
		l.Time = ts.AsTime().UTC().Format(time.RFC3339Nano)
	}
	if p := ev.GetPayload(); json.Valid(p) {
		l.Payload = p
	} else {
		l.PayloadBase64 = p
	}
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if id != "" {
		s.seen[id] = struct{}{}
	}
	s.written++
	return nil
}

// Flush writes the buffered lines and syncs the file.
func (s *sink) Flush(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// flushEvery writes buffered lines out every d (without syncing), so the
// file follows the stream; the returned function stops it.
func (s *sink) flushEvery(d time.Duration, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.mu.Lock()
				err := s.w.Flush()
				s.mu.Unlock()
				if err != nil {
					log.Warn("file sink write", "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func (s *sink) counts() (written, dupes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written, s.dupes
}

// Close flushes, syncs and closes the file.
func (s *sink) Close() error {
	err := s.Flush(context.Background())
	return errors.Join(err, s.f.Close())
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
