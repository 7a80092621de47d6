//go:build linux

package process

import (
	"sync"

	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

// treeScans shares scans of the process tree between the Stops that run at
// the same time. A Stop needs the descendants of its shim as they are once
// it has begun; reading them costs a read of every process's stat, so a
// destroy of N components that scanned once per Stop read N × (all
// processes) files — most of a 1,000-component destroy's CPU. A caller
// gets the first scan that starts after it asked: never an older view, and
// every caller waiting meanwhile shares it.
type treeScans struct {
	mu      sync.Mutex
	running bool
	pending *treeScan // the next scan, for those who asked since the last began
}

type treeScan struct {
	done chan struct{}
	tree shim.Tree
}

// get returns a scan of the process tree begun after get was called.
func (t *treeScans) get() shim.Tree {
	t.mu.Lock()
	if t.pending == nil {
		t.pending = &treeScan{done: make(chan struct{})}
	}
	s := t.pending
	if !t.running {
		t.running = true
		go t.loop()
	}
	t.mu.Unlock()
	<-s.done
	return s.tree
}

// loop runs scans while anyone waits for one.
func (t *treeScans) loop() {
	for {
		t.mu.Lock()
		s := t.pending
		t.pending = nil
		if s == nil {
			t.running = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		s.tree = shim.ScanTree()
		close(s.done)
	}
}
