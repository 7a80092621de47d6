//go:build linux

package procinfo

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// WaitGone waits until the process id names has ended (or is a zombie, as
// Alive counts it), at most d or until ctx ends; it reports whether it has.
// It is told of the exit by a pidfd (Linux 5.3 and later), so it returns as
// soon as the process is gone, not at the next tick of a poll — a destroy
// of many components waits for each of them in turn. Where no pidfd can be
// had it polls /proc.
func WaitGone(ctx context.Context, id Identity, d time.Duration) bool {
	deadline := time.Now().Add(d)
	if !Alive(id) {
		return true
	}
	fd, err := unix.PidfdOpen(id.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return true
	}
	if err != nil {
		return pollGone(ctx, id, deadline)
	}
	defer unix.Close(fd)
	// The pid may have been taken by another process between the check
	// above and the open: the pidfd then names that one, which ours is not.
	if !Alive(id) {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return !Alive(id)
		}
		// Slices of at most pollSlice, so that an ended ctx is noticed.
		ms := int(min(left, pollSlice).Milliseconds()) + 1
		n, err := unix.Poll(fds, ms)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return pollGone(ctx, id, deadline)
		case n > 0:
			return true
		}
	}
}

// pollSlice bounds one wait of WaitGone, so that it sees its context end.
const pollSlice = 50 * time.Millisecond

// pollGone is WaitGone by reading /proc: 5 ms, doubling up to 50 ms.
func pollGone(ctx context.Context, id Identity, deadline time.Time) bool {
	step := 5 * time.Millisecond
	for {
		if !Alive(id) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(step):
		}
		step = min(step*2, pollSlice)
	}
}
