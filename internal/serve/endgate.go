package serve

import (
	"context"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// destroyOperation is the operation lock's name for a destroy.
const destroyOperation = "destroy"

// endGateQuiet is how long the gate swallows ends after it found a
// destroy holding the operation lock, before it reads the lock again.
const endGateQuiet = 250 * time.Millisecond

// gateEnds passes the ends the executors report (on ends) on to the
// restart watcher (wake), except while a destroy holds the operation
// lock: the components a destroy stops end by design, and a pass over
// every component for each of them (each ended one saved as a failure, its
// restart refused by the lock) was most of serve's CPU during a destroy
// of 1,000. Ends seen meanwhile are one, read again after endGateQuiet;
// the watcher's poll still looks at everything, so an end during a destroy
// that the destroy did not cause is seen at the next poll.
func gateEnds(ctx context.Context, st *state.Store, ends <-chan struct{}, wake func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ends:
		}
		st.Settled(ctx, settleQuiet, settleMax)
		if h, err := st.LockHolder(); err == nil && h != nil && h.Operation == destroyOperation {
			t := time.NewTimer(endGateQuiet)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		wake()
	}
}

// How long serve's background readers of the state (the watcher's ends,
// the relay's topology, the gateway check, the relay's counters) wait for
// another process's run of writes to end before they read: see
// state.Store.Settled.
const (
	settleQuiet = 100 * time.Millisecond
	settleMax   = 3 * time.Second
)
