package docker

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// EnvEndpoint is the control-plane endpoint variable, the one value of a
// container's environment this provider rewrites (see the package doc).
const EnvEndpoint = contract.EnvEndpoint

// createRequest is everything ContainerCreate takes.
type createRequest struct {
	Name    string
	Config  *container.Config
	Host    *container.HostConfig
	Network *network.NetworkingConfig
}

// containerRequest builds the container for spec, to be created from image
// (the reference, or the pinned image ID). It talks to nobody.
func containerRequest(spec *providers.ComponentSpec, image string) (*createRequest, error) {
	c := spec.Component
	if c == nil {
		return nil, errors.New("no component")
	}
	netName := NetworkName(spec.Pipeline)
	cfg := &container.Config{
		Image: image,
		Env:   containerEnv(spec.Env),
		Labels: map[string]string{
			LabelPipeline:  spec.Pipeline,
			LabelComponent: spec.Address(),
			LabelSpecHash:  spec.SpecHash,
			LabelLineage:   spec.Lineage,
			LabelInstance:  spec.InstanceID,
			LabelPorts:     providers.FormatPorts(spec.Ports),
		},
	}
	if len(c.Command) > 0 {
		cfg.Entrypoint = append([]string(nil), c.Command...)
	}
	if len(c.Args) > 0 {
		cfg.Cmd = append([]string(nil), c.Args...)
	}
	if c.StopTimeout > 0 {
		secs := int(math.Ceil(c.StopTimeout.D().Seconds()))
		cfg.StopTimeout = &secs
	}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(netName),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		ExtraHosts:    []string{HostGateway + ":host-gateway"},
	}
	if len(c.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		hc.PortBindings = nat.PortMap{}
	}
	for _, pt := range c.Ports {
		proto := pt.Protocol
		if proto == "" {
			proto = "tcp"
		}
		port, err := nat.NewPort(proto, strconv.Itoa(pt.ContainerPort))
		if err != nil {
			return nil, fmt.Errorf("port %d/%s: %w", pt.ContainerPort, proto, err)
		}
		cfg.ExposedPorts[port] = struct{}{}
		if pt.HostPort == 0 {
			continue
		}
		hostIP := pt.HostIP
		if hostIP == "" {
			hostIP = "127.0.0.1"
		}
		hc.PortBindings[port] = append(hc.PortBindings[port], nat.PortBinding{HostIP: hostIP, HostPort: strconv.Itoa(pt.HostPort)})
	}
	for _, v := range c.Volumes {
		src := v.HostPath
		if !filepath.IsAbs(src) {
			base := spec.WorkDir
			if base == "" {
				base = "."
			}
			abs, err := filepath.Abs(filepath.Join(base, src))
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.HostPath, err)
			}
			src = abs
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: v.ContainerPath, ReadOnly: v.ReadOnly})
	}
	r := c.Resources
	hc.NanoCPUs = r.CPULimit * 1_000_000
	hc.Memory = r.MemoryLimit
	hc.MemoryReservation = r.MemoryRequest
	if r.CPURequest > 0 {
		hc.CPUShares = max(r.CPURequest*1024/1000, 2)
	}
	return &createRequest{
		Name:    ContainerName(spec.Pipeline, c.ID),
		Config:  cfg,
		Host:    hc,
		Network: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}},
	}, nil
}

// containerEnv is spec.Env as KEY=VALUE, sorted, with a loopback
// control-plane endpoint pointed at the host gateway.
func containerEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if k == EnvEndpoint {
			v = hostGatewayEndpoint(v)
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// hostGatewayEndpoint rewrites host:port on a loopback host to the host
// gateway; anything else is returned as is.
func hostGatewayEndpoint(v string) string {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return v
	}
	switch host {
	case "127.0.0.1", "localhost", "::1", "0.0.0.0", "":
		return net.JoinHostPort(HostGateway, port)
	}
	return v
}
