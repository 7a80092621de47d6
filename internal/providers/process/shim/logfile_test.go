//go:build linux

package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockingSink never returns from a write until released.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	lines   []string
}

func (b *blockingSink) writeLine(p []byte) error {
	<-b.release
	b.mu.Lock()
	b.lines = append(b.lines, string(p))
	b.mu.Unlock()
	return nil
}
func (b *blockingSink) close() error { return nil }

func TestLogPumpNeverBlocksTheChild(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	pump := newLogPump(sink, io.Discard)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pump.copy(StreamStdout, r)
	// Far more than the queue and the pipe buffer hold: the writer side (the
	// child) must still get through while the log is stuck.
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 3*queueLines; i++ {
			if _, err := fmt.Fprintf(w, "line %d %s\n", i, strings.Repeat("y", 100)); err != nil {
				done <- err
				return
			}
		}
		done <- w.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child blocked on its output while the log was stuck")
	}
	if pump.dropped.Load() == 0 {
		t.Fatal("nothing dropped")
	}
	close(sink.release)
	if !pump.finish(time.Second, 5*time.Second, func() { _ = r.Close() }) {
		t.Fatal("pump did not finish")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	// Where lines were lost, the log says so.
	noted := false
	for _, l := range sink.lines {
		noted = noted || (strings.Contains(l, " flowctl ") && strings.Contains(l, "lines dropped"))
	}
	if !noted || len(sink.lines) < 2 {
		t.Fatalf("no note of dropped lines in %d lines", len(sink.lines))
	}
}

// flakySink fails its first n writes.
type flakySink struct {
	n     int
	lines []string
}

func (f *flakySink) writeLine(p []byte) error {
	if f.n > 0 {
		f.n--
		return errors.New("disk full")
	}
	f.lines = append(f.lines, string(p))
	return nil
}
func (f *flakySink) close() error { return nil }

func TestLogPumpRecoversFromWriteErrors(t *testing.T) {
	sink := &flakySink{n: 3}
	var diag bytes.Buffer
	var mu sync.Mutex
	pump := newLogPump(sink, writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return diag.Write(p) }))
	pump.copy(StreamStderr, strings.NewReader("a\nb\nc\nd\ne\r\nno newline"))
	if !pump.finish(time.Second, time.Second, func() {}) {
		t.Fatal("pump did not finish")
	}
	got := strings.Join(sink.lines, "")
	// a and b fail, so does the note about them; c gets through, then the note.
	for _, want := range []string{"stderr c\n", "flowctl 2 log lines dropped", "stderr d\n", "stderr e\n", "stderr no newline\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(diag.String(), "disk full") || !strings.Contains(diag.String(), "work again") {
		t.Errorf("diagnostics:\n%s", diag.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestLogPumpSplitsLongLines(t *testing.T) {
	sink := &flakySink{}
	pump := newLogPump(sink, io.Discard)
	pump.copy(StreamStdout, strings.NewReader(strings.Repeat("z", maxLine+10)+"\n"))
	pump.finish(time.Second, time.Second, func() {})
	if len(sink.lines) != 2 || len(sink.lines[0]) > maxLine+100 {
		t.Fatalf("%d lines", len(sink.lines))
	}
}

func TestRotatingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	r, err := openRotating(path, 100, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := r.writeLine([]byte(fmt.Sprintf("line %02d %s\n", i, strings.Repeat("-", 30)))); err != nil {
			t.Fatal(err)
		}
	}
	_ = r.close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 100 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, fi, err)
		}
	}
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("too many files")
	}
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(cur), "line 19") {
		t.Fatalf("current = %q", cur)
	}

	// One file only: truncated in place.
	one := filepath.Join(t.TempDir(), "one.log")
	r, _ = openRotating(one, 50, 1)
	for i := 0; i < 5; i++ {
		_ = r.writeLine([]byte(fmt.Sprintf("line %d %s\n", i, strings.Repeat(".", 20))))
	}
	_ = r.close()
	if b, _ := os.ReadFile(one); !strings.HasPrefix(string(b), "line 4") {
		t.Fatalf("one = %q", b)
	}
}
