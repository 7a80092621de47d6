package docker

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/providers"
)

var _ providers.WorkloadAttester = (*Provider)(nil)

// containerNet is what attestation knows of a container's place on its
// networks: its addresses and the networks' gateways.
type containerNet struct {
	addrs    []netip.Addr
	gateways []netip.Addr
}

// AttestPeer implements providers.WorkloadAttester: a call from a container
// reaches the control plane (on the host gateway) with the container's own
// address on the pipeline's bridge network as its source — the kernel
// routes it, nothing rewrites it — so the peer address names the
// container. Only the containers of workloads are looked at, and the one
// that matches is inspected again to check it still runs with that
// address. A call that arrives from a network's gateway address was
// translated on the way (a userland proxy, rootless networking): the
// container behind it cannot be proven, and that is said.
func (p *Provider) AttestPeer(ctx context.Context, peer, _ netip.AddrPort, ws []providers.Workload) (providers.Attestation, error) {
	ip := peer.Addr().Unmap()
	if ip.IsLoopback() {
		return providers.Attestation{}, fmt.Errorf("the call came from this machine's loopback (%s), not from a container", peer)
	}
	cli, err := p.api(ctx)
	if err != nil {
		return providers.Attestation{}, err
	}
	viaGateway := false
	for _, w := range ws {
		hd, err := decodeHandle(w.Handle)
		if err != nil {
			continue
		}
		cn, err := p.containerNet(ctx, cli, hd.ID, false)
		if err != nil {
			continue
		}
		if has(cn.gateways, ip) {
			viaGateway = true
		}
		if !has(cn.addrs, ip) {
			continue
		}
		// Confirm with the engine: the container still runs with it.
		if cn, err = p.containerNet(ctx, cli, hd.ID, true); err == nil && has(cn.addrs, ip) {
			return providers.Attestation{Address: w.Address, Proof: "container " + shortID(hd.ID)}, nil
		}
	}
	if viaGateway {
		return providers.Attestation{}, fmt.Errorf("the call came from %s, a bridge gateway: its source address was translated on the way, which hides the container that made it", ip)
	}
	return providers.Attestation{}, fmt.Errorf("no running container of the pipeline (%d looked at) has the address %s", len(ws), ip)
}

// containerNet returns the addresses of a container, from the cache unless
// fresh; fresh also drops a container that no longer runs.
func (p *Provider) containerNet(ctx context.Context, cli *client.Client, id string, fresh bool) (containerNet, error) {
	if !fresh {
		if v, ok := p.attested.Load(id); ok {
			return v.(containerNet), nil
		}
	}
	ins, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		p.attested.Delete(id)
		return containerNet{}, err
	}
	cn := netOf(ins)
	if ins.State == nil || !ins.State.Running {
		p.attested.Delete(id)
		return containerNet{}, fmt.Errorf("container %s is not running", shortID(id))
	}
	p.attested.Store(id, cn)
	return cn, nil
}

func netOf(ins container.InspectResponse) containerNet {
	var cn containerNet
	if ins.NetworkSettings == nil {
		return cn
	}
	for _, ep := range ins.NetworkSettings.Networks {
		if ep == nil {
			continue
		}
		if a, err := netip.ParseAddr(ep.IPAddress); err == nil {
			cn.addrs = append(cn.addrs, a)
		}
		if a, err := netip.ParseAddr(ep.GlobalIPv6Address); err == nil {
			cn.addrs = append(cn.addrs, a)
		}
		if a, err := netip.ParseAddr(ep.Gateway); err == nil {
			cn.gateways = append(cn.gateways, a)
		}
	}
	return cn
}

func has(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x.Unmap() == a {
			return true
		}
	}
	return false
}
