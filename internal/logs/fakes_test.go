package logs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/providers/providertest"
)

// t0 is the time the fake logs are written around.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// stamp renders a line as executors return it with Timestamps.
func stamp(t time.Time, stream, text string) string {
	return t.UTC().Format(time.RFC3339Nano) + " " + stream + " " + text
}

// fakeInventory is a state the test edits.
type fakeInventory struct {
	mu     sync.Mutex
	now    time.Time
	insts  []Instance
	events []Line // markers, by seq = index+1
}

func (f *fakeInventory) put(in Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putLocked(in)
}

func (f *fakeInventory) putLocked(in Instance) {
	f.insts = slices.DeleteFunc(f.insts, func(x Instance) bool { return x.Address == in.Address })
	f.insts = append(f.insts, in)
	slices.SortFunc(f.insts, func(a, b Instance) int { return strings.Compare(a.Address, b.Address) })
}

// restart records a new instance and the history event of its restart in
// one transaction, as the watcher writes them.
func (f *fakeInventory) restart(in Instance, marker Line) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, marker)
	f.putLocked(in)
}

// remove forgets a component's record and records the history event of
// its removal, in one transaction as destroy writes them.
func (f *fakeInventory) remove(addr string, marker Line) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, marker)
	f.insts = slices.DeleteFunc(f.insts, func(x Instance) bool { return x.Address == addr })
}

func (f *fakeInventory) event(m Line) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, m)
}

// setNow sets the time snapshots are stamped with; zero: the wall clock.
func (f *fakeInventory) setNow(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

func (f *fakeInventory) Snapshot(_ context.Context, after uint64) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Snapshot{At: f.now, Instances: slices.Clone(f.insts), LastSeq: uint64(len(f.events))}
	if s.At.IsZero() {
		s.At = time.Now()
	}
	if int(after) < len(f.events) {
		s.Markers = slices.Clone(f.events[after:])
	}
	return s, nil
}

// collector gathers emitted lines.
type collector struct {
	mu    sync.Mutex
	lines []Line
}

func (c *collector) emit(l Line) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, l)
	return nil
}

// texts lists "component: text" of every line so far.
func (c *collector) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		out = append(out, l.Component+": "+l.Text)
	}
	return out
}

// waitFor polls until cond holds on the lines, failing after a generous
// bound (a hang, not a timing assertion).
func (c *collector) waitFor(t *testing.T, what string, cond func([]string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(c.texts()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; lines so far:\n%s", what, strings.Join(c.texts(), "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func readersOf(e *providertest.Provider) ReaderFor {
	return func(name string) (Reader, error) {
		if name != "fake" {
			return nil, fmt.Errorf("no executor %q", name)
		}
		return e, nil
	}
}
