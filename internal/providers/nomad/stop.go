package nomad

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/providers"
)

// stopMargin is how long past the grace period Stop waits for allocations
// to stop before it purges the job anyway: Nomad kills a task kill_timeout
// (the stop_timeout) after signalling it, and needs a moment to say so.
const stopMargin = 15 * time.Second

// purgeTimeout bounds the purge, which must happen even when the caller's
// context has ended.
const purgeTimeout = 30 * time.Second

// Stop implements providers.Provider. It deregisters the job, so Nomad
// signals its tasks (SIGTERM) and kills them after their kill_timeout;
// waits for its allocations to stop, up to grace and a margin; then purges
// the job, so that nothing of it is left and its ID is free. With no grace
// it purges at once. A job already gone is not an error.
func (p *Provider) Stop(ctx context.Context, h providers.Handle, grace time.Duration) error {
	hd, err := decodeHandle(h)
	if err != nil {
		return err
	}
	c, err := p.api()
	if err != nil {
		return err
	}
	if grace > 0 {
		gone := false
		err := p.call(ctx, fmt.Sprintf("stop %s: deregister job %s", hd.Address, hd.JobID), func(ctx context.Context) error {
			_, _, err := c.Jobs().DeregisterOpts(hd.JobID, &api.DeregisterOptions{Purge: false}, writeOptions(ctx, hd.Namespace, hd.Region))
			if isNotFound(err) {
				gone, err = true, nil
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			return err
		}
		if gone {
			return nil
		}
		if err == nil {
			p.waitStopped(ctx, c, hd, grace+stopMargin)
		}
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), purgeTimeout)
	defer cancel()
	return p.call(pctx, fmt.Sprintf("stop %s: purge job %s", hd.Address, hd.JobID), func(ctx context.Context) error {
		_, _, err := c.Jobs().DeregisterOpts(hd.JobID, &api.DeregisterOptions{Purge: true}, writeOptions(ctx, hd.Namespace, hd.Region))
		if isNotFound(err) {
			return nil
		}
		return err
	})
}

// waitStopped waits until no allocation of the job is left running, for
// at most d. It gives up quietly: the purge that follows stops whatever is
// left.
func (p *Provider) waitStopped(ctx context.Context, c *api.Client, hd handle, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		var allocs []*api.AllocationListStub
		err := p.read(ctx, "list allocations of "+hd.JobID, func(ctx context.Context) error {
			var err error
			allocs, _, err = c.Jobs().Allocations(hd.JobID, false, queryOptions(ctx, hd.Namespace, hd.Region))
			return err
		})
		if err != nil && !isNotFound(err) && ctx.Err() == nil {
			p.log.Warn("could not tell whether the job stopped; purging it", "job", hd.JobID, "err", err)
			return
		}
		live := 0
		for _, a := range allocs {
			if !terminal(a.ClientStatus) {
				live++
			}
		}
		if live == 0 || err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.opts.PollInterval):
		}
	}
}

// terminal reports whether an allocation's client status is final.
func terminal(clientStatus string) bool {
	switch clientStatus {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}
