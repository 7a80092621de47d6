package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/providers"
)

// Start implements providers.Provider: image, network, create, start. It
// returns once the container runs; a container that could not be started
// is removed, so a failed Start leaves nothing behind.
func (p *Provider) Start(ctx context.Context, spec providers.ComponentSpec) (providers.Handle, error) {
	if spec.Component == nil {
		return nil, errors.New("docker: start: no component")
	}
	addr := spec.Address()
	fail := func(err error) (providers.Handle, error) { return nil, fmt.Errorf("start %s: %w", addr, err) }
	cli, err := p.api(ctx)
	if err != nil {
		return fail(err)
	}
	img, err := p.ensureImage(ctx, cli, spec.Component)
	if err != nil {
		return nil, err // names the component already
	}
	req, err := containerRequest(&spec, img)
	if err != nil {
		return fail(err)
	}

	p.netMu.RLock()
	defer p.netMu.RUnlock()
	id, err := p.create(ctx, cli, spec.Pipeline, req)
	if err != nil {
		return fail(err)
	}
	if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		_ = cli.ContainerRemove(context.WithoutCancel(ctx), id, container.RemoveOptions{Force: true})
		return fail(fmt.Errorf("start container %s: %w", req.Name, err))
	}
	return encodeHandle(handle{ID: id, Name: req.Name, Address: addr, Pipeline: spec.Pipeline, Lineage: spec.Lineage}), nil
}

// create creates the container on the pipeline network, making the network
// first if need be (once more if it vanished in between).
func (p *Provider) create(ctx context.Context, cli *client.Client, pipeline string, req *createRequest) (string, error) {
	for attempt := 0; ; attempt++ {
		if err := p.ensureNetwork(ctx, cli, pipeline); err != nil {
			return "", err
		}
		resp, err := cli.ContainerCreate(ctx, req.Config, req.Host, req.Network, nil, req.Name)
		switch {
		case err == nil:
			return resp.ID, nil
		case cerrdefs.IsConflict(err):
			return "", p.nameTaken(ctx, cli, req.Name, err)
		case cerrdefs.IsNotFound(err) && attempt == 0 && strings.Contains(err.Error(), "network"):
			// The network was removed behind our back: make it again.
			p.networks.Delete(pipeline)
			continue
		}
		return "", fmt.Errorf("create container %s: %w", req.Name, err)
	}
}

// nameTaken explains a name conflict: whose container holds the name.
func (p *Provider) nameTaken(ctx context.Context, cli *client.Client, name string, cause error) error {
	ins, err := cli.ContainerInspect(ctx, name)
	if err != nil {
		return fmt.Errorf("create container %s: %w", name, cause)
	}
	l := ins.Config.Labels
	switch {
	case l[LabelPipeline] == "":
		return fmt.Errorf("the container name %s is taken by container %s, which flowctl did not create: remove or rename it", name, shortID(ins.ID))
	default:
		return fmt.Errorf("the container name %s is taken by container %s of pipeline %s (lineage %s, %s): another state file runs this pipeline, or plan again to see it",
			name, shortID(ins.ID), l[LabelPipeline], l[LabelLineage], ins.State.Status)
	}
}

// ensureNetwork makes sure the pipeline's bridge network exists.
func (p *Provider) ensureNetwork(ctx context.Context, cli *client.Client, pipeline string) error {
	if _, ok := p.networks.Load(pipeline); ok {
		return nil
	}
	name := NetworkName(pipeline)
	// Serialise the check-then-create within this process; the engine
	// refuses a duplicate name across processes.
	p.netCreateMu.Lock()
	defer p.netCreateMu.Unlock()
	if _, ok := p.networks.Load(pipeline); ok {
		return nil
	}
	n, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err == nil {
		p.networks.Store(pipeline, n.ID)
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", name, err)
	}
	resp, err := cli.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{LabelPipeline: pipeline},
	})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			if n, ierr := cli.NetworkInspect(ctx, name, network.InspectOptions{}); ierr == nil {
				p.networks.Store(pipeline, n.ID)
				return nil
			}
		}
		return fmt.Errorf("create network %s: %w", name, err)
	}
	p.networks.Store(pipeline, resp.ID)
	return nil
}
