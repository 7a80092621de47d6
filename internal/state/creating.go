package state

import (
	"os"
	"syscall"
	"time"
)

// settleEmpty gives a 0-byte file that another process may be creating the
// time to get its first pages: bbolt creates the file, then takes its lock
// and writes them, so a reader that waits for the lock (and for a moment
// after it, for a creator that has not taken it yet) sees the file as its
// creator leaves it. It returns the file's size then; it never fails (the
// caller judges what it finds).
func settleEmpty(path string, timeout time.Duration) int64 {
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	f, err := os.Open(path)
	if err != nil {
		return size()
	}
	defer f.Close()
	deadline := time.Now().Add(timeout)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	// A creator between its create and its lock: a brief, bounded look.
	for end := time.Now().Add(emptySettle); size() == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	return size()
}

// emptySettle is how long a 0-byte state file is watched for a creator
// that has not locked it yet, before it is judged empty.
const emptySettle = 500 * time.Millisecond
