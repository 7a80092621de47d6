//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
)

// Bounds of Stop beyond the caller's grace period.
const (
	killWait = 5 * time.Second // for the group to die after SIGKILL
	shimWait = 5 * time.Second // for the shim to record the exit and leave
)

// Stop implements providers.Provider. It sends SIGTERM to the component's
// process group, waits up to grace (cut short when ctx ends), then sends
// SIGKILL; it waits for the shim to record the exit, kills it if it
// lingers, and removes the run record. Only processes whose identity still
// matches the handle are signalled; a component already gone is not an
// error.
func (p *Provider) Stop(ctx context.Context, h providers.Handle, grace time.Duration) error {
	hd, err := decodeHandle(h)
	if err != nil {
		return err
	}
	if err := stopChild(ctx, hd, grace); err != nil {
		return fmt.Errorf("stop %s: %w", hd.Address, err)
	}
	if alive(hd.BootID, hd.Shim) && !waitGone(context.Background(), hd.BootID, hd.Shim, shimWait) {
		_ = signalProcess(hd.BootID, hd.Shim, syscall.SIGKILL)
		waitGone(context.Background(), hd.BootID, hd.Shim, killWait)
	}
	if rec, _ := readRecord(hd.RunRecord); rec != nil && rec.Child == hd.Child {
		if err := os.Remove(hd.RunRecord); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stop %s: remove run record: %w", hd.Address, err)
		}
		// The shim's diagnostics go with the run; the component's log stays.
		_ = os.Remove(shimLogFromRecord(hd.RunRecord))
	}
	return nil
}

// stopChild ends the component's process group: SIGTERM, then SIGKILL once
// grace is over or ctx ends.
func stopChild(ctx context.Context, hd handle, grace time.Duration) error {
	if !alive(hd.BootID, hd.Child) {
		return nil
	}
	if err := signalGroup(hd.BootID, hd.Child, syscall.SIGTERM); err != nil && !errors.Is(err, errNotOurs) {
		return err
	}
	if waitGone(ctx, hd.BootID, hd.Child, grace) {
		return nil
	}
	if err := signalGroup(hd.BootID, hd.Child, syscall.SIGKILL); err != nil && !errors.Is(err, errNotOurs) {
		return err
	}
	if !waitGone(context.Background(), hd.BootID, hd.Child, killWait) {
		return fmt.Errorf("%s is still alive %v after SIGKILL", hd.Child, killWait)
	}
	return nil
}

// waitGone polls until id is no longer alive; false if it still is after d
// (or when ctx ends first).
func waitGone(ctx context.Context, boot string, id procinfo.Identity, d time.Duration) bool {
	deadline := time.Now().Add(d)
	step := 5 * time.Millisecond
	for {
		if !alive(boot, id) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(step):
		}
		step = min(step*2, 50*time.Millisecond)
	}
}
