package docker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// keptLines is how many lines of a component's removed containers its
// archive keeps: the last ones, across every container removed.
const keptLines = 1000

// archiveTimeout bounds the copy of a container's last lines before it is
// removed, which must not hold a stop up for long.
const archiveTimeout = 10 * time.Second

// A container's log goes with the container. Stop (a destroy, a replace, a
// restart by the watcher) therefore first copies its last keptLines lines,
// stamped, into the component's archive under Options.LogDir, and Logs
// reads the archive before the live container: the lines before a restart
// stay readable, and flowctl logs puts the restart's marker between them.

// archivePath is the archive of the component at addr.
func (p *Provider) archivePath(addr string) string {
	if p.opts.LogDir == "" || addr == "" || strings.ContainsAny(addr, `/\`) || strings.HasPrefix(addr, ".") {
		return ""
	}
	return filepath.Join(p.opts.LogDir, addr+".docker.log")
}

// archive appends the last lines of container hd to its component's
// archive, which keeps the newest keptLines. Failing to is not fatal to
// the stop it precedes; the error says why.
func (p *Provider) archive(ctx context.Context, cli *client.Client, hd handle) error {
	path := p.archivePath(hd.Address)
	if path == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), archiveTimeout)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, hd.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Tail: strconv.Itoa(keptLines)})
	if err != nil {
		return fmt.Errorf("read the last lines of %s: %w", hd.Name, err)
	}
	defer rc.Close()
	var fresh bytes.Buffer
	if err := demux(rc, &fresh, true); err != nil {
		return fmt.Errorf("read the last lines of %s: %w", hd.Name, err)
	}
	if fresh.Len() == 0 {
		return nil
	}
	p.archiveMu.Lock()
	defer p.archiveMu.Unlock()
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	lines := splitLines(append(old, fresh.Bytes()...))
	if len(lines) > keptLines {
		lines = lines[len(lines)-keptLines:]
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	for _, l := range lines {
		_, _ = w.WriteString(l)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// demux copies the engine's multiplexed, stamped log stream to w in the
// form Logs returns.
func demux(r io.Reader, w io.Writer, timestamps bool) error {
	out := &lineWriter{stream: "stdout", w: w, timestamps: timestamps}
	errw := &lineWriter{stream: "stderr", w: w, timestamps: timestamps}
	_, err := stdcopy.StdCopy(out, errw, r)
	if err == nil {
		err = out.flush()
	}
	if err == nil {
		err = errw.flush()
	}
	return err
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// archived returns the archived lines of the component at addr stamped at
// or after since (zero: all), the last tail of them (0: all), in the form
// Logs returns.
func (p *Provider) archived(addr string, since time.Time, tail int, timestamps bool) []string {
	path := p.archivePath(addr)
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range splitLines(b) {
		ts, rest, _ := strings.Cut(l, " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || (!since.IsZero() && t.Before(since)) {
			continue
		}
		if !timestamps {
			_, text, _ := strings.Cut(rest, " ")
			l = text
		}
		out = append(out, l)
	}
	if tail > 0 && len(out) > tail {
		out = out[len(out)-tail:]
	}
	return out
}
