package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/flowctl/flowctl/internal/providers"
)

// Logs implements providers.Provider through the engine's log API (so it
// works with the json-file and local log drivers, not with those that keep
// no local copy). Stdout and stderr are demultiplexed (stdcopy) and
// interleaved as the engine sent them. With Timestamps each line is
// "<RFC 3339 UTC ns> <stdout|stderr> <text>", as the process executor
// writes its logs; otherwise it is the text alone. Since, Tail and Follow
// are the engine's; a followed log ends when the container stops, ctx ends
// or the reader is closed. The lines the component's removed containers
// left in its archive (see logarchive.go) come first: Since and Tail count
// them with the live container's.
func (p *Provider) Logs(ctx context.Context, h providers.Handle, opts providers.LogOptions) (io.ReadCloser, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return nil, err
	}
	cli, err := p.api(ctx)
	if err != nil {
		return nil, err
	}
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: opts.Follow, Tail: "all"}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	rc, err := cli.ContainerLogs(ctx, hd.ID, lo)
	if cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		// Gone, or going (the engine refuses the logs of a container being
		// removed): what the archive kept of it is what there is.
		if old := p.archived(hd.Address, opts.Since, opts.Tail, opts.Timestamps); len(old) > 0 {
			return io.NopCloser(strings.NewReader(joinLines(old))), nil
		}
		if cerrdefs.IsConflict(err) {
			return nil, fmt.Errorf("logs of %s: %w", hd.Address, err)
		}
		return nil, fmt.Errorf("logs of %s: container %s no longer exists (a removed container's logs go with it)", hd.Address, hd.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", hd.Address, err)
	}
	if opts.Tail > 0 && !opts.Follow {
		// The archive's share of the tail is what the container's own
		// lines leave of it.
		defer rc.Close()
		var live bytes.Buffer
		if err := demux(rc, &live, opts.Timestamps); err != nil {
			return nil, fmt.Errorf("logs of %s: %w", hd.Address, err)
		}
		lines := splitLines(live.Bytes())
		var old []string
		if n := opts.Tail - len(lines); n > 0 {
			old = p.archived(hd.Address, opts.Since, n, opts.Timestamps)
		}
		return io.NopCloser(strings.NewReader(joinLines(append(old, lines...)))), nil
	}
	old := p.archived(hd.Address, opts.Since, opts.Tail, opts.Timestamps)
	pr, pw := io.Pipe()
	go func() {
		err := demux(rc, pw, opts.Timestamps)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			err = nil // the end of a follow is a normal end of the stream
		}
		_ = pw.CloseWithError(err)
	}()
	return &logReader{Reader: io.MultiReader(strings.NewReader(joinLines(old)), pr), pipe: pr, body: rc}, nil
}

func joinLines(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}

type logReader struct {
	io.Reader
	pipe *io.PipeReader
	body io.Closer
}

func (r *logReader) Close() error {
	_ = r.body.Close() // ends StdCopy, and with it the pipe
	return r.pipe.Close()
}

// lineWriter turns the engine's timestamped lines of one stream into the
// form Logs returns. It keeps a partial line until its end arrives.
type lineWriter struct {
	stream     string
	w          io.Writer
	timestamps bool
	partial    []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			l.partial = append(l.partial, b...)
			break
		}
		line := b[:i]
		if len(l.partial) > 0 {
			line = append(l.partial, line...)
			l.partial = nil
		}
		if err := l.emit(line); err != nil {
			return 0, err
		}
		b = b[i+1:]
	}
	return n, nil
}

func (l *lineWriter) flush() error {
	if len(l.partial) == 0 {
		return nil
	}
	line := l.partial
	l.partial = nil
	return l.emit(line)
}

func (l *lineWriter) emit(line []byte) error {
	ts, text, ok := strings.Cut(string(line), " ")
	if !ok {
		ts, text = string(line), ""
	}
	var s string
	if l.timestamps {
		s = ts + " " + l.stream + " " + text + "\n"
	} else {
		s = text + "\n"
	}
	_, err := io.WriteString(l.w, s)
	return err
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
