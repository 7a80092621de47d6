//go:build linux

package process

import (
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestTreeScansShareAScanAndMakeANewOneOnceItIsOld(t *testing.T) {
	var ts treeScans
	isChild := func(t *testing.T, desc []int) {
		t.Helper()
		if !slices.Contains(desc, os.Getpid()) {
			t.Errorf("this process (%d) is not among its parent's descendants %v", os.Getpid(), desc)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var pids []int
			for _, d := range ts.get().Descendants(os.Getppid()) {
				pids = append(pids, d.PID)
			}
			isChild(t, pids)
		})
	}
	wg.Wait()
	ts.mu.Lock()
	first := ts.last
	first.began = time.Now().Add(-time.Minute) // long past treeReuse
	ts.mu.Unlock()
	ts.get()
	ts.mu.Lock()
	second := ts.last
	ts.mu.Unlock()
	if second == first || !second.began.After(first.began) {
		t.Fatal("an old scan was given again")
	}
}
