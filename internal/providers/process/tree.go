//go:build linux

package process

import (
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

// treeScans shares scans of the process tree between the Stops that run at
// the same time. A Stop needs the descendants of its shim; reading them
// costs a read of every process's stat, so a destroy of N components that
// scanned once per Stop read N × (all processes) files — most of a
// 1,000-component destroy's CPU. A caller gets a scan begun at most
// treeReuse before it asked, or else the next one, which every caller
// waiting meanwhile shares. A descendant forked within that window and
// missed is still below the shim, its subreaper: the shim stops it once
// the component has exited, and Stop kills what the shim could not
// (survivors in the run record).
type treeScans struct {
	mu      sync.Mutex
	running bool
	pending *treeScan // the next scan, for those who asked since the last began
	last    *treeScan // the last scan begun
}

// treeReuse is how old a scan of the process tree a Stop accepts.
const treeReuse = 200 * time.Millisecond

type treeScan struct {
	began time.Time
	done  chan struct{}
	tree  shim.Tree
}

// get returns a scan of the process tree begun at most treeReuse before
// get was called.
func (t *treeScans) get() shim.Tree {
	t.mu.Lock()
	if l := t.last; l != nil && time.Since(l.began) <= treeReuse {
		t.mu.Unlock()
		<-l.done
		return l.tree
	}
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
		s.began = time.Now()
		t.last = s
		t.mu.Unlock()
		s.tree = shim.ScanTree()
		close(s.done)
	}
}
