package docker

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/providers"
)

// removeTimeout bounds the removal that follows a stop, which must happen
// even when the caller's context has ended.
const removeTimeout = 30 * time.Second

// Stop implements providers.Provider. It asks the engine to stop the
// container (SIGTERM, or the image's STOPSIGNAL; SIGKILL after grace,
// rounded up to whole seconds), then removes it, forcibly. With no grace it
// only removes it forcibly: one call, which kills at once. When ctx ends
// during the stop, the container is removed forcibly all the same. A
// container already gone is not an error. When no container of the
// pipeline is left, the pipeline's network is removed too.
func (p *Provider) Stop(ctx context.Context, h providers.Handle, grace time.Duration) error {
	return p.stop(ctx, h, grace, true)
}

// StopForReplace implements providers.ReplaceStopper: Stop, but the
// pipeline's network stays for the instance that follows (removing and
// making a network again costs the engine most of a second).
func (p *Provider) StopForReplace(ctx context.Context, h providers.Handle, grace time.Duration) error {
	return p.stop(ctx, h, grace, false)
}

func (p *Provider) stop(ctx context.Context, h providers.Handle, grace time.Duration, removeNetwork bool) error {
	hd, err := decodeHandle(h)
	if err != nil {
		return err
	}
	cli, err := p.api(ctx)
	if err != nil {
		return err
	}
	if grace > 0 {
		secs := int(math.Ceil(grace.Seconds()))
		err := cli.ContainerStop(ctx, hd.ID, container.StopOptions{Timeout: &secs})
		if err != nil && !cerrdefs.IsNotFound(err) && ctx.Err() == nil {
			return fmt.Errorf("stop %s: stop container %s: %w", hd.Address, hd.Name, err)
		}
	}
	if err := p.archive(ctx, cli, hd); err != nil && !cerrdefs.IsNotFound(err) {
		slog.Debug("keep the last lines of a container", "address", hd.Address, "err", err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	err = cli.ContainerRemove(rctx, hd.ID, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !removalInProgress(err) {
		return fmt.Errorf("stop %s: remove container %s: %w", hd.Address, hd.Name, err)
	}
	if hd.Pipeline != "" && removeNetwork {
		if err := p.removeNetworkIfUnused(rctx, cli, hd.Pipeline, hd.Lineage); err != nil {
			return fmt.Errorf("stop %s: %w", hd.Address, err)
		}
	}
	return nil
}

func removalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && containsFold(err.Error(), "already in progress")
}

// removeNetworkIfUnused removes the pipeline's network once no container
// of the pipeline (of this lineage, when known: another state's containers
// are not ours to wait for) is left. The check is made again under the
// write lock, which waits for Starts in flight. A network that something
// still uses is left in place.
func (p *Provider) removeNetworkIfUnused(ctx context.Context, cli *client.Client, pipeline, lineage string) error {
	cs, err := listContainers(ctx, cli, pipeline, lineage)
	if err != nil || len(cs) > 0 {
		return err
	}
	p.netMu.Lock()
	defer p.netMu.Unlock()
	if cs, err := listContainers(ctx, cli, pipeline, lineage); err != nil || len(cs) > 0 {
		return err
	}
	p.networks.Delete(pipeline)
	name := NetworkName(pipeline)
	err = cli.NetworkRemove(ctx, name)
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err) || cerrdefs.IsPermissionDenied(err) || containsFold(err.Error(), "active endpoints"):
		// Something that is not a component of the pipeline uses it.
		return nil
	}
	return fmt.Errorf("remove network %s: %w", name, err)
}
