package e2e

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is an output buffer a test may read while a command writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunAppliesFollowsLogsAndDestroysOnInterrupt(t *testing.T) {
	f := newFixture(t)
	cs := []comp{
		{kind: "source", id: "a", env: map[string]string{"TC_PRINT": "tick {n}", "TC_PRINT_INTERVAL": "200ms"}},
		{kind: "sink", id: "b", inputs: []string{"source.a"}, env: map[string]string{"TC_PRINT": "sunk {n}", "TC_PRINT_INTERVAL": "200ms"}},
	}
	f.writePipeline(cs)
	var out lockedBuffer
	cmd := f.command(context.Background(), f.dir, "run", "--watch")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, 60*time.Second, "log lines of both components", func() bool {
		s := out.String()
		return strings.Contains(s, "source.a | tick 2") && strings.Contains(s, "sink.b   | sunk 2")
	})
	cp := f.serveRecord()
	if cp == nil || cp.Process.PID != cmd.Process.Pid {
		t.Fatalf("the control plane should run inside flowctl run (pid %d): %+v", cmd.Process.Pid, cp)
	}
	if recs := f.records(); len(recs) != 2 {
		t.Fatalf("state after run started: %v", recs)
	}

	// --watch: a broken save is reported and changes nothing.
	f.write("pipeline.hcl", "pipeline \"broken\" {\n")
	waitFor(t, 30*time.Second, "the diagnostics of the broken file", func() bool {
		return strings.Contains(out.String(), "keeps running as it is")
	})
	before := f.records()["sink.b"].InstanceID
	// A good save is planned and applied.
	cs[1].env["VERSION"] = "2"
	f.writePipeline(cs)
	waitFor(t, 60*time.Second, "the edited sink to be replaced", func() bool {
		r := f.records()["sink.b"]
		return r != nil && r.InstanceID != before && r.Status == "running"
	})

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not end after Ctrl-C\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Destroy complete!") {
		t.Fatalf("no destroy after Ctrl-C:\n%s", out.String())
	}
	if recs := f.records(); len(recs) != 0 {
		t.Fatalf("state still records %v", recs)
	}
	f.assertNoProcesses()
	if cp.Alive() {
		t.Fatal("the control plane outlived run")
	}
}
