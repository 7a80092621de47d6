//go:build linux

package shim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Log line format: "<timestamp> <stream> <text>\n". The timestamp is UTC
// RFC 3339 with nanoseconds, fixed width (trailing zeros kept), so that
// lines sort and parse without surprises.
const tsLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Streams of a log line. "flowctl" lines are notes from the shim itself
// (lines dropped because the log could not be written).
const (
	StreamStdout  = "stdout"
	StreamStderr  = "stderr"
	streamFlowctl = "flowctl"
)

// maxLine is the longest line kept whole; a longer one is split.
const maxLine = 64 << 10

// queueLines is how many lines may wait for the log writer. When it is
// full (the log file cannot keep up or cannot be written) lines are
// dropped and counted, so the child's pipes are always drained: a
// component never blocks on its own output because of its log.
const queueLines = 4096

// FormatLine renders one log line in the format above; the process
// provider's Logs parses what it writes.
func FormatLine(ts time.Time, stream string, text []byte) []byte {
	b := make([]byte, 0, len(tsLayout)+len(stream)+len(text)+3)
	b = ts.UTC().AppendFormat(b, tsLayout)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, text...)
	return append(b, '\n')
}

// lineSink receives formatted lines.
type lineSink interface {
	writeLine(b []byte) error
	close() error
}

// rotatingFile is a log file rotated by size: path, path.1 (newest old),
// path.2, ... up to maxFiles files in all.
type rotatingFile struct {
	path     string
	maxSize  int64
	maxFiles int

	f    *os.File
	size int64
}

func openRotating(path string, maxSize int64, maxFiles int) (*rotatingFile, error) {
	r := &rotatingFile{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	r.f, r.size = f, fi.Size()
	return nil
}

func (r *rotatingFile) writeLine(b []byte) error {
	if r.f == nil {
		// The last write failed: try again with a fresh file handle.
		if err := r.open(); err != nil {
			return err
		}
	}
	if r.maxSize > 0 && r.size > 0 && r.size+int64(len(b)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return err
		}
	}
	n, err := r.f.Write(b)
	r.size += int64(n)
	if err != nil {
		_ = r.f.Close()
		r.f = nil
		return err
	}
	return nil
}

func (r *rotatingFile) rotate() error {
	_ = r.f.Close()
	r.f = nil
	if r.maxFiles <= 1 {
		if err := os.Truncate(r.path, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return r.open()
	}
	_ = os.Remove(r.path + "." + strconv.Itoa(r.maxFiles-1))
	for i := r.maxFiles - 2; i >= 1; i-- {
		err := os.Rename(r.path+"."+strconv.Itoa(i), r.path+"."+strconv.Itoa(i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return r.open()
}

func (r *rotatingFile) close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

type logLine struct {
	ts     time.Time
	stream string
	text   []byte
}

// logPump copies a child's output streams, line by line and timestamped,
// into a sink. Readers never wait for the sink: lines go through a bounded
// queue, and are dropped (and counted, and the count logged when writing
// works again) when it is full.
type logPump struct {
	sink    lineSink
	q       chan logLine
	dropped atomic.Int64
	diag    io.Writer // the shim's stderr, for write errors
	readers sync.WaitGroup
	done    chan struct{}
}

func newLogPump(sink lineSink, diag io.Writer) *logPump {
	p := &logPump{sink: sink, q: make(chan logLine, queueLines), diag: diag, done: make(chan struct{})}
	go p.write()
	return p
}

// copy reads r to EOF (or error) in its own goroutine.
func (p *logPump) copy(stream string, r io.Reader) {
	p.readers.Add(1)
	go func() {
		defer p.readers.Done()
		br := bufio.NewReaderSize(r, maxLine)
		for {
			chunk, err := br.ReadSlice('\n')
			if len(chunk) > 0 {
				text := chunk
				if text[len(text)-1] == '\n' {
					text = text[:len(text)-1]
				}
				if n := len(text); n > 0 && text[n-1] == '\r' {
					text = text[:n-1]
				}
				p.enqueue(logLine{ts: time.Now(), stream: stream, text: append([]byte(nil), text...)})
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
}

func (p *logPump) enqueue(l logLine) {
	select {
	case p.q <- l:
	default:
		p.dropped.Add(1)
	}
}

func (p *logPump) write() {
	defer close(p.done)
	failing := false
	for l := range p.q {
		if n := p.dropped.Load(); n > 0 {
			note := FormatLine(time.Now(), streamFlowctl, fmt.Appendf(nil, "%d log lines dropped (the log could not be written fast enough or at all)", n))
			if p.sink.writeLine(note) == nil {
				p.dropped.Add(-n)
			}
		}
		if err := p.sink.writeLine(FormatLine(l.ts, l.stream, l.text)); err != nil {
			p.dropped.Add(1)
			if !failing {
				fmt.Fprintf(p.diag, "%s log write failed, dropping lines until it works again: %v\n", time.Now().UTC().Format(tsLayout), err)
				failing = true
			}
			continue
		}
		if failing {
			fmt.Fprintf(p.diag, "%s log writes work again\n", time.Now().UTC().Format(tsLayout))
			failing = false
		}
	}
	if n := p.dropped.Load(); n > 0 {
		_ = p.sink.writeLine(FormatLine(time.Now(), streamFlowctl, fmt.Appendf(nil, "%d log lines dropped", n)))
	}
	_ = p.sink.close()
}

// finish waits for the readers (up to readWait; the caller closes the
// pipes after that) and then for the queue to be written (up to
// writeWait). It reports whether everything was written.
func (p *logPump) finish(readWait, writeWait time.Duration, closeReaders func()) bool {
	readersDone := make(chan struct{})
	go func() { p.readers.Wait(); close(readersDone) }()
	select {
	case <-readersDone:
	case <-time.After(readWait):
		closeReaders()
		<-readersDone
	}
	close(p.q)
	select {
	case <-p.done:
		return true
	case <-time.After(writeWait):
		return false
	}
}
