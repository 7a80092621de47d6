//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

// Bounds of Stop beyond the caller's grace period.
const (
	killWait = 5 * time.Second  // for the group to die after SIGKILL
	shimWait = 10 * time.Second // for the shim to stop what is left, record the exit and leave
)

// Stop implements providers.Provider. It sends SIGTERM to the component's
// process group and to each of its descendants that left the group (setsid,
// a daemonising fork), waits up to grace (cut short when ctx ends), then
// sends SIGKILL to all of them; it waits for the shim to record the exit,
// kills it if it lingers, and removes the run record. Only processes whose
// identity still matches are signalled; a component already gone is not an
// error. A descendant still alive at the end is: Stop names it.
func (p *Provider) Stop(ctx context.Context, h providers.Handle, grace time.Duration) error {
	hd, err := decodeHandle(h)
	if err != nil {
		return err
	}
	// The shim is a subreaper: whatever the component started is below it,
	// whichever group or session it moved to.
	var escaped []shim.Descendant
	if alive(hd.BootID, hd.Shim) {
		for _, d := range shim.Descendants(hd.Shim.PID) {
			if d.PGID != hd.Child.PID {
				escaped = append(escaped, d)
			}
		}
	}
	if err := stopChild(ctx, hd, grace, escaped); err != nil {
		return fmt.Errorf("stop %s: %w", hd.Address, err)
	}
	if alive(hd.BootID, hd.Shim) && !waitGone(context.Background(), hd.BootID, hd.Shim, shimWait) {
		_ = signalProcess(hd.BootID, hd.Shim, syscall.SIGKILL)
		waitGone(context.Background(), hd.BootID, hd.Shim, killWait)
	}
	rec, _ := readRecord(hd.RunRecord)
	if rec != nil && rec.Child == hd.Child {
		escaped = append(escaped, rec.Survivors...)
	}
	if left := shim.StopProcesses(escaped, 0, killWait, nil); len(left) > 0 {
		return fmt.Errorf("stop %s: %s", hd.Address, survivorsText(left))
	}
	if rec != nil && rec.Child == hd.Child {
		if err := os.Remove(hd.RunRecord); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stop %s: remove run record: %w", hd.Address, err)
		}
		// The shim's diagnostics go with the run; the component's log stays.
		_ = os.Remove(shimLogFromRecord(hd.RunRecord))
	}
	return nil
}

// survivorsText names the descendants a stop left alive.
func survivorsText(ps []shim.Descendant) string {
	parts := make([]string, len(ps))
	for i, d := range ps {
		parts[i] = fmt.Sprintf("pid %d (%s)", d.PID, d.Command)
	}
	return fmt.Sprintf("could not stop %d descendant process(es) of the component, still running after SIGKILL: %s", len(ps), strings.Join(parts, ", "))
}

// stopChild ends the component's process group and its escaped
// descendants: SIGTERM, then SIGKILL once grace is over or ctx ends.
func stopChild(ctx context.Context, hd handle, grace time.Duration, escaped []shim.Descendant) error {
	for _, d := range escaped {
		_ = procinfo.Signal(d.Identity, syscall.SIGTERM)
	}
	if !alive(hd.BootID, hd.Child) {
		return nil
	}
	if err := signalGroup(hd.BootID, hd.Child, syscall.SIGTERM); err != nil && !errors.Is(err, errNotOurs) {
		return err
	}
	if waitGone(ctx, hd.BootID, hd.Child, grace) {
		return nil
	}
	for _, d := range escaped {
		_ = procinfo.Signal(d.Identity, syscall.SIGKILL)
	}
	if err := signalGroup(hd.BootID, hd.Child, syscall.SIGKILL); err != nil && !errors.Is(err, errNotOurs) {
		return err
	}
	if !waitGone(context.Background(), hd.BootID, hd.Child, killWait) {
		return fmt.Errorf("%s is still alive %v after SIGKILL", hd.Child, killWait)
	}
	return nil
}

// waitGone waits until id is no longer alive (procinfo.WaitGone: told of
// the exit, not polling); false if it still is after d (or when ctx ends
// first).
func waitGone(ctx context.Context, boot string, id procinfo.Identity, d time.Duration) bool {
	if !alive(boot, id) {
		return true
	}
	return procinfo.WaitGone(ctx, id, d)
}
