package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// LockInfo describes the holder of the operation lock.
type LockInfo struct {
	ID         string    `json:"id"`
	Operation  string    `json:"operation"`
	Who        string    `json:"who,omitempty"`
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"start_ticks"`
	Host       string    `json:"host"`
	Created    time.Time `json:"created"`
	// Brief marks a holder that keeps the lock for a moment only (see
	// LockOptions.Brief).
	Brief bool `json:"brief,omitempty"`
}

func (l *LockInfo) String() string {
	return fmt.Sprintf("ID %s, operation %s, pid %d on %s, since %s", l.ID, l.Operation, l.PID, l.Host, l.Created.Format(time.RFC3339))
}

// LockedError is returned when another operation holds the lock.
type LockedError struct {
	Holder LockInfo
	// SessionBound says the lock ends with its holder's database session
	// (the pg backend): a holder that is gone holds nothing.
	SessionBound bool
}

func (e *LockedError) Error() string {
	if e.SessionBound {
		return "the state is locked by another operation: " + e.Holder.String() +
			"\nThe lock ends with that operation, however it ends. If it hangs, flowctl force-unlock " + e.Holder.ID + " ends its database session."
	}
	return "the state is locked by another operation: " + e.Holder.String() +
		"\nIf that operation is gone, run: flowctl force-unlock " + e.Holder.ID
}

// Lock is a held operation lock.
type Lock struct {
	store   *Store
	Info    LockInfo
	release func() error
}

// LockOptions configures Acquire.
type LockOptions struct {
	Operation string
	// Brief says the lock is held for a moment only (the restart watcher's
	// restarts): others then wait up to BriefWait for it, whatever their
	// Timeout says.
	Brief bool
	// Timeout is how long to keep retrying while another holder has the lock;
	// zero fails at once.
	Timeout time.Duration
	// OnBreak is told about a stale lock that was broken (its holder on this
	// host no longer exists).
	OnBreak func(stale LockInfo)
}

// BriefWait is how long Acquire waits, whatever Timeout says, for a lock
// held by a brief operation: the restart watcher's restarts hold it for a
// moment only, and a user's command should not fail because a component
// was being restarted just then.
const BriefWait = time.Minute

// Acquire takes the operation lock. A lock whose holder ran on this host and
// no longer exists (its pid and start time are gone) is broken, and OnBreak
// is told. A live holder makes it retry until the timeout, then fail with a
// *LockedError that names the holder.
func (s *Store) Acquire(ctx context.Context, opts LockOptions) (*Lock, error) {
	self, err := procinfo.Self()
	if err != nil {
		return nil, fmt.Errorf("acquire lock: %w", err)
	}
	host, _ := os.Hostname()
	info := LockInfo{
		ID: uuid.NewString(), Operation: opts.Operation, PID: self.PID, StartTicks: self.StartTicks,
		Host: host, Created: s.now().UTC(), Brief: opts.Brief,
	}
	if u := os.Getenv("USER"); u != "" {
		info.Who = u + "@" + host
	}
	start := time.Now()
	for {
		holder, broken, release, err := s.be.tryLock(info)
		if err != nil {
			return nil, fmt.Errorf("acquire lock: %w", err)
		}
		if holder == nil {
			if broken != nil && opts.OnBreak != nil {
				opts.OnBreak(*broken)
			}
			return &Lock{store: s, Info: info, release: release}, nil
		}
		limit := opts.Timeout
		if holder.Brief {
			limit = max(limit, BriefWait)
		}
		if time.Since(start) >= limit {
			return nil, &LockedError{Holder: *holder, SessionBound: s.be.sessionLock()}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("acquire lock: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Release gives the lock back. Releasing a lock that was force-unlocked and
// taken by someone else leaves theirs alone.
func (l *Lock) Release() error { return l.release() }

// LockHolder returns the current holder, or nil when the state is unlocked.
func (s *Store) LockHolder() (*LockInfo, error) { return s.be.lockHolder() }

// ErrLockMismatch is returned by ForceUnlock when id is not the holder's.
var ErrLockMismatch = errors.New("lock ID does not match the holder")

// ForceUnlock removes the lock if its ID is id, and records it in history.
func (s *Store) ForceUnlock(id string) (*LockInfo, error) { return s.be.forceUnlock(s, id) }
