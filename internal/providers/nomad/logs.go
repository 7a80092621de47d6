package nomad

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/providers"
)

// tailBytesPerLine is how far from the end of a log Logs starts reading
// per line asked for by Tail.
const tailBytesPerLine = 512

// Logs implements providers.Provider through Nomad's client filesystem
// API (/v1/client/fs/logs), for the newest running allocation of the job,
// or the newest one when none runs. Stdout and stderr are read side by
// side and merged line by line as they arrive. Nomad keeps no timestamps:
// with Timestamps each line is "<time read, RFC 3339 UTC ns>
// <stdout|stderr> <text>", and Since cannot select lines; it is ignored,
// except that a Follow with Since and no Tail (a follow resuming after a
// backlog was read) starts at the log's current end, so that it repeats
// nothing. Tail keeps the last N lines of each stream. Follow keeps
// streaming until the allocation stops, ctx ends or the reader is closed.
func (p *Provider) Logs(ctx context.Context, h providers.Handle, opts providers.LogOptions) (io.ReadCloser, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return nil, err
	}
	c, err := p.api()
	if err != nil {
		return nil, err
	}
	al, err := p.logAllocation(ctx, c, hd)
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", hd.Address, err)
	}
	task := hd.Task
	if task == "" {
		for t := range al.TaskStates {
			task = t
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	out := &lineSink{w: pw, timestamps: opts.Timestamps}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, stream := range []string{"stdout", "stderr"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.streamLog(ctx, c, al, task, stream, hd, opts, out)
		}()
	}
	go func() {
		wg.Wait()
		err := errors.Join(errs...)
		if ctx.Err() != nil {
			err = nil // the end of a follow is a normal end of the stream
		}
		_ = pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *logReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// logAllocation picks the allocation whose logs are read.
func (p *Provider) logAllocation(ctx context.Context, c *api.Client, hd handle) (*api.Allocation, error) {
	var stubs []*api.AllocationListStub
	err := p.read(ctx, "list allocations of job "+hd.JobID, func(ctx context.Context) error {
		var err error
		stubs, _, err = c.Jobs().Allocations(hd.JobID, false, queryOptions(ctx, hd.Namespace, hd.Region))
		return err
	})
	if isNotFound(err) {
		return nil, fmt.Errorf("job %s no longer exists (a purged job's logs go with it)", hd.JobID)
	}
	if err != nil {
		return nil, err
	}
	if len(stubs) == 0 {
		return nil, fmt.Errorf("job %s has no allocation yet", hd.JobID)
	}
	sort.Slice(stubs, func(i, j int) bool { return stubs[i].CreateIndex > stubs[j].CreateIndex })
	pickStub := stubs[0]
	for _, s := range stubs {
		if s.ClientStatus == api.AllocClientStatusRunning {
			pickStub = s
			break
		}
	}
	var al *api.Allocation
	err = p.read(ctx, "read allocation "+pickStub.ID, func(ctx context.Context) error {
		var err error
		al, _, err = c.Allocations().Info(pickStub.ID, queryOptions(ctx, hd.Namespace, hd.Region))
		return err
	})
	return al, err
}

// streamLog copies one stream of the task's log to out. With Tail it
// first reads the end of the log and keeps the last lines; a follow then
// goes on from where that read ended.
func (p *Provider) streamLog(ctx context.Context, c *api.Client, al *api.Allocation, task, stream string, hd handle, opts providers.LogOptions, out *lineSink) error {
	q := queryOptions(ctx, hd.Namespace, hd.Region)
	var offset int64
	if opts.Tail > 0 || !opts.Follow {
		// What the log holds now (its end, with Tail).
		origin, from := "start", int64(0)
		if opts.Tail > 0 {
			origin, from = "end", int64(opts.Tail)*tailBytesPerLine
		}
		lines := &lineBuffer{}
		end, err := readFrames(ctx, c, al, false, task, stream, origin, from, q, lines)
		if err != nil {
			return fmt.Errorf("logs of %s (%s): %w", hd.Address, stream, err)
		}
		offset = end
		all := lines.lines(opts.Tail > 0)
		if opts.Tail > 0 && len(all) > opts.Tail {
			all = all[len(all)-opts.Tail:]
		}
		for _, l := range all {
			if err := out.line(stream, l); err != nil {
				return err
			}
		}
		if !opts.Follow {
			return nil
		}
	}
	origin := "start"
	if opts.Tail == 0 && !opts.Since.IsZero() {
		// A follow that resumes (after a backlog read): from the end.
		origin = "end"
	}
	w := &lineWriter{stream: stream, out: out}
	_, err := readFrames(ctx, c, al, true, task, stream, origin, offset, q, w)
	if err == nil {
		err = w.flush()
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s (%s): %w", hd.Address, stream, err)
	}
	return nil
}

// frameSink receives the data of a log stream; start is the file offset
// the data begins at.
type frameSink interface {
	data(start int64, b []byte) error
}

// readFrames streams frames into sink until the stream ends, and returns
// the offset just past the last byte read.
func readFrames(ctx context.Context, c *api.Client, al *api.Allocation, follow bool, task, stream, origin string, offset int64, q *api.QueryOptions, sink frameSink) (int64, error) {
	frames, errCh := c.AllocFS().Logs(al, follow, task, stream, origin, offset, ctx.Done(), q)
	end := offset
	ended := false // the client's reader goroutine has returned
	defer func() {
		if ended {
			return
		}
		// The client's reader goroutine returns once its frames are taken.
		go func() {
			for {
				select {
				case _, ok := <-frames:
					if !ok {
						return
					}
				case <-errCh:
					return
				}
			}
		}()
	}()
	first := true
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				ended = true
				return end, nil
			}
			if len(f.Data) == 0 {
				continue
			}
			// Offset is where the frame's data ends in the file.
			start := f.Offset - int64(len(f.Data))
			if first && start < 0 {
				start = 0
			}
			first = false
			end = f.Offset
			if err := sink.data(start, f.Data); err != nil {
				return end, err
			}
		case err := <-errCh:
			ended = true
			if ctx.Err() != nil {
				return end, nil
			}
			return end, err
		case <-ctx.Done():
			return end, nil
		}
	}
}

// lineBuffer collects a stream read to its end.
type lineBuffer struct {
	buf   bytes.Buffer
	start int64
	seen  bool
}

func (b *lineBuffer) data(start int64, d []byte) error {
	if !b.seen {
		b.start, b.seen = start, true
	}
	b.buf.Write(d)
	return nil
}

// lines splits what was read; a read that started inside the file
// (partial) drops its first, cut, line.
func (b *lineBuffer) lines(partial bool) []string {
	s := b.buf.String()
	if partial && b.start > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		} else {
			s = ""
		}
	}
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// lineWriter cuts a followed stream into lines, keeping a partial one
// until its end arrives.
type lineWriter struct {
	stream  string
	out     *lineSink
	partial []byte
}

func (l *lineWriter) data(_ int64, b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.partial = append(l.partial, b...)
			return nil
		}
		line := append(l.partial, b[:i]...)
		l.partial = nil
		if err := l.out.line(l.stream, string(line)); err != nil {
			return err
		}
		b = b[i+1:]
	}
	return nil
}

func (l *lineWriter) flush() error {
	if len(l.partial) == 0 {
		return nil
	}
	line := string(l.partial)
	l.partial = nil
	return l.out.line(l.stream, line)
}

// lineSink writes whole lines of either stream, one at a time.
type lineSink struct {
	mu         sync.Mutex
	w          io.Writer
	timestamps bool
}

func (s *lineSink) line(stream, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.timestamps {
		_, err = fmt.Fprintf(s.w, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, text)
	} else {
		_, err = io.WriteString(s.w, text+"\n")
	}
	return err
}
