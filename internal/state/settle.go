package state

import (
	"context"
	"time"
)

// Settled waits until the state file is quiet for a reader in the
// background: it returns at once when the file is the version this process
// last wrote or checked, or else once it has not changed for quiet, or
// after at most max (or when ctx ends). Another process's apply or destroy
// writes the file hundreds of times in a row; each version it writes is one
// this process must check before reading it (checkFile) while holding the
// file's lock, which that process's next write then waits for. A reader
// that can wait (serve's watcher pass, its relay topology, its gateway
// check) waits for the run of writes to end instead. A database backend
// has no file to check: Settled returns at once.
func (s *Store) Settled(ctx context.Context, quiet, max time.Duration) {
	if s.file == nil || s.path == "" {
		return
	}
	deadline := time.Now().Add(max)
	step := min(quiet/4, 50*time.Millisecond)
	if step <= 0 {
		return
	}
	last, err := statVersion(s.path)
	if err != nil {
		return
	}
	// Quiet since its last change, which may be long past.
	since := time.Unix(0, last.mtime)
	for {
		now := time.Now()
		if s.isChecked(last) || now.Sub(since) >= quiet || !now.Before(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(step):
		}
		v, err := statVersion(s.path)
		if err != nil {
			return
		}
		if v != last {
			last, since = v, time.Now()
		}
	}
}

// Busy reports whether another process has written the state file since
// this process last wrote or checked it (false for a database backend): a
// background writer with nothing urgent to write (serve's watcher saving
// trackers) leaves the file to that process's run of writes, each of which
// would otherwise have to check the file it wrote anew.
func (s *Store) Busy() bool {
	if s.file == nil || s.path == "" {
		return false
	}
	v, err := statVersion(s.path)
	if err != nil {
		return false
	}
	return !s.isChecked(v)
}
