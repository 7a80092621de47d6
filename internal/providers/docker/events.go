package docker

import (
	"context"
	"log/slog"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Bounds of the wait between two attempts to follow the engine's events.
// A stream that stayed up for eventsStable was healthy: the wait starts
// over from eventsRetryMin.
const (
	eventsRetryMin = 250 * time.Millisecond
	eventsRetryMax = 30 * time.Second
	eventsStable   = 10 * time.Second
)

// WatchEnds follows the engine's events until ctx ends and calls signal
// whenever a container of pipeline (label io.flowctl.pipeline) dies, is
// killed by the out-of-memory killer, or is removed: the restart watcher
// then looks at once instead of at its next poll. The events only say that
// something ended; what ended, and how, Observe tells.
//
// It starts once the provider has reached the engine for something else
// (the watcher observing a docker component): until then it waits, and a
// pipeline without docker components never has it touch the engine. It
// calls signal each time the stream is (re)established, as events may have
// been lost while it was down. An engine gone away or a broken stream is
// retried, waiting twice as long each time (from 250 ms up to 30 s),
// quietly: it never fails. It returns when ctx ends.
func (p *Provider) WatchEnds(ctx context.Context, pipeline string, signal func(), log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	select {
	case <-ctx.Done():
		return
	case <-p.contactedChan():
	}
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", LabelPipeline+"="+pipeline),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("event", string(events.ActionOOM)),
		filters.Arg("event", string(events.ActionDestroy)),
	)
	wait := eventsRetryMin
	for ctx.Err() == nil {
		began := time.Now()
		err := p.followEvents(ctx, args, signal)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) >= eventsStable {
			wait = eventsRetryMin
		}
		log.Debug("docker events: not following the engine's events; retrying", "pipeline", pipeline, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, eventsRetryMax)
	}
}

// followEvents subscribes once and signals on every event until the stream
// breaks or ctx ends; it returns why it ended.
func (p *Provider) followEvents(ctx context.Context, args filters.Args, signal func()) error {
	cli, err := p.api(ctx)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := cli.Events(sctx, events.ListOptions{Filters: args})
	// Whatever happened before the subscription is for the poll, or for
	// this one look.
	signal()
	for {
		select {
		case <-msgs:
			signal()
		case err := <-errs:
			return err
		}
	}
}
