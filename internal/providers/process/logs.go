//go:build linux

package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
)

// followPoll is how often a followed log is checked for growth and
// rotation. Lines are lost to a follower only if the log is rotated more
// than LogMaxFiles-1 times between two polls.
const followPoll = 50 * time.Millisecond

// Logs implements providers.Provider. It reads the rotated files (oldest
// first) and then the current one. Since keeps lines stamped at or after
// it; Tail keeps the last N of those; Timestamps keeps each line as stored
// ("<timestamp> <stream> <text>"), otherwise only the text is returned.
// Follow keeps reading as the log grows, across rotations, until ctx ends
// or the reader is closed. A component that never logged has no log: that
// is an error unless following.
func (p *Provider) Logs(ctx context.Context, h providers.Handle, opts providers.LogOptions) (io.ReadCloser, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return nil, err
	}
	path := hd.LogPath
	if !opts.Follow {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && len(rotatedLogs(path)) == 0 {
			return nil, fmt.Errorf("logs of %s: no log at %s", hd.Address, path)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		err := streamLog(ctx, path, opts, pw)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
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

// rotatedLogs lists path.N files, oldest (highest N) first.
func rotatedLogs(path string) []string {
	matches, _ := filepath.Glob(path + ".*")
	type numbered struct {
		n    int
		path string
	}
	var rs []numbered
	for _, m := range matches {
		if n, err := strconv.Atoi(strings.TrimPrefix(m, path+".")); err == nil && n > 0 {
			rs = append(rs, numbered{n, m})
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.path
	}
	return out
}

// splitLine parses "<timestamp> <stream> <text>".
func splitLine(line []byte) (ts time.Time, text []byte, ok bool) {
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return time.Time{}, line, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(line[:i]))
	if err != nil {
		return time.Time{}, line, false
	}
	rest := line[i+1:]
	j := bytes.IndexByte(rest, ' ')
	if j < 0 {
		return ts, nil, true
	}
	return ts, rest[j+1:], true
}

// logFilter applies Since, Tail and Timestamps, writing to w.
type logFilter struct {
	opts providers.LogOptions
	w    io.Writer
	ring [][]byte // last Tail lines, while tailing
	head int
	full bool
	tail bool
}

func (f *logFilter) add(line []byte) error {
	if !f.opts.Since.IsZero() {
		if ts, _, ok := splitLine(line); ok && ts.Before(f.opts.Since) {
			return nil
		}
	}
	if f.tail {
		if f.ring == nil {
			f.ring = make([][]byte, f.opts.Tail)
		}
		f.ring[f.head] = line
		f.head = (f.head + 1) % len(f.ring)
		if f.head == 0 {
			f.full = true
		}
		return nil
	}
	return f.emit(line)
}

// endTail writes the tailed lines and switches to writing lines through.
func (f *logFilter) endTail() error {
	if !f.tail {
		return nil
	}
	f.tail = false
	if f.ring == nil {
		return nil
	}
	start, n := 0, f.head
	if f.full {
		start, n = f.head, len(f.ring)
	}
	for i := 0; i < n; i++ {
		if err := f.emit(f.ring[(start+i)%len(f.ring)]); err != nil {
			return err
		}
	}
	f.ring = nil
	return nil
}

func (f *logFilter) emit(line []byte) error {
	out := line
	if !f.opts.Timestamps {
		if _, text, ok := splitLine(line); ok {
			out = text
		}
	}
	buf := make([]byte, 0, len(out)+1)
	buf = append(append(buf, out...), '\n')
	_, err := f.w.Write(buf)
	return err
}

// readLines feeds the complete lines of r to f. With keepPartial, a last
// line without its newline is returned instead of fed; n is the number of
// bytes consumed from r, partial line included.
func readLines(r io.Reader, f *logFilter, pending []byte, keepPartial bool) (rest []byte, n int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		chunk, rerr := br.ReadSlice('\n')
		n += int64(len(chunk))
		if len(chunk) > 0 {
			if chunk[len(chunk)-1] == '\n' {
				line := append(append([]byte(nil), pending...), chunk[:len(chunk)-1]...)
				pending = nil
				if err := f.add(line); err != nil {
					return nil, n, err
				}
			} else {
				pending = append(pending, chunk...)
			}
		}
		if rerr != nil {
			if errors.Is(rerr, bufio.ErrBufferFull) {
				continue
			}
			if !errors.Is(rerr, io.EOF) {
				return pending, n, rerr
			}
			break
		}
	}
	if len(pending) > 0 && !keepPartial {
		if err := f.add(pending); err != nil {
			return nil, n, err
		}
		pending = nil
	}
	return pending, n, nil
}

// streamLog writes the log at path to w as opts asks: the rotated files
// and the current one, then, when following, what is appended to it across
// rotations until ctx ends.
func streamLog(ctx context.Context, path string, opts providers.LogOptions, w io.Writer) error {
	s := &logStream{path: path, f: &logFilter{opts: opts, w: w, tail: opts.Tail > 0}}
	// Open the current file first: if it is rotated while the older files
	// are read, this handle still reads what followed them.
	if err := s.openCurrent(); err != nil {
		return err
	}
	defer s.close()
	if err := s.readBacklog(opts.Follow); err != nil {
		return err
	}
	if err := s.f.endTail(); err != nil {
		return err
	}
	if !opts.Follow {
		return nil
	}
	return s.follow(ctx)
}

// logStream is a reader's position in a component's log: the current file
// it reads (nil while there is none) and what it has of a line not yet
// ended.
type logStream struct {
	path    string
	f       *logFilter
	cur     *os.File
	curInfo os.FileInfo
	pending []byte
}

// openCurrent opens the current log file, if there is one.
func (s *logStream) openCurrent() error {
	cur, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	s.cur = cur
	s.curInfo, _ = cur.Stat()
	return nil
}

func (s *logStream) close() {
	if s.cur != nil {
		_ = s.cur.Close()
	}
}

// readBacklog feeds the rotated files, oldest first, then the current one.
// With keepPartial, a last line without its newline is kept pending.
func (s *logStream) readBacklog(keepPartial bool) error {
	for _, old := range rotatedLogs(s.path) {
		of, err := os.Open(old)
		if err != nil {
			continue // rotated away meanwhile
		}
		if fi, err := of.Stat(); err == nil && s.curInfo != nil && os.SameFile(fi, s.curInfo) {
			_ = of.Close() // the current file, rotated meanwhile: read below
			break
		}
		_, _, err = readLines(of, s.f, nil, false)
		_ = of.Close()
		if err != nil {
			return err
		}
	}
	if s.cur == nil {
		return nil
	}
	var err error
	s.pending, _, err = readLines(s.cur, s.f, nil, keepPartial)
	return err
}

// follow feeds what is appended to the log, following it across rotations
// and truncations, until ctx ends.
func (s *logStream) follow(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		grew, err := s.readMore()
		if err != nil {
			return err
		}
		if grew {
			continue
		}
		// At the end of what we have: was the file rotated or truncated?
		moved, err := s.checkMoved()
		if err != nil {
			return err
		}
		if moved {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followPoll):
		}
	}
}

// readMore feeds the complete lines appended to the current file; grew
// says whether anything was read.
func (s *logStream) readMore() (grew bool, err error) {
	if s.cur == nil {
		return false, nil
	}
	var n int64
	s.pending, n, err = readLines(s.cur, s.f, s.pending, true)
	return n > 0, err
}

// checkMoved looks at the file now at path: when it is another file than
// the one being read (rotation) or shorter than what was read
// (truncation), the stream moves to it and moved is true.
func (s *logStream) checkMoved() (moved bool, err error) {
	fi, err := os.Stat(s.path)
	switch {
	case err != nil:
		// Between rotation's rename and the new file: look again soon.
		return false, nil
	case s.cur == nil || s.curInfo == nil || !os.SameFile(fi, s.curInfo):
		return s.reopen()
	}
	if off, err := s.cur.Seek(0, io.SeekCurrent); err == nil && fi.Size() < off {
		// Truncated in place: start over.
		_, _ = s.cur.Seek(0, io.SeekStart)
		s.pending = nil
		return true, nil
	}
	return false, nil
}

// reopen finishes the rotated file, reads the files rotated after it (when
// rotation outpaced us), oldest first, and opens the new current file.
func (s *logStream) reopen() (bool, error) {
	if s.cur != nil {
		var err error
		if s.pending, _, err = readLines(s.cur, s.f, s.pending, false); err != nil {
			return false, err
		}
		_ = s.cur.Close()
		s.cur = nil
		if err := readNewerRotated(s.path, s.curInfo, s.f); err != nil {
			return false, err
		}
	}
	nf, err := os.Open(s.path)
	if err != nil {
		s.curInfo = nil
		return false, nil
	}
	s.cur = nf
	s.curInfo, _ = nf.Stat()
	return true, nil
}

// readNewerRotated feeds f the rotated files newer than the file done (all
// of them when done was rotated away entirely).
func readNewerRotated(path string, done os.FileInfo, f *logFilter) error {
	olds := rotatedLogs(path)
	from := 0
	for i, o := range olds {
		if fi, err := os.Stat(o); err == nil && done != nil && os.SameFile(fi, done) {
			from = i + 1
		}
	}
	for _, o := range olds[from:] {
		of, err := os.Open(o)
		if err != nil {
			continue
		}
		_, _, err = readLines(of, f, nil, false)
		_ = of.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
