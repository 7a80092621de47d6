//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/flowctl/flowctl/internal/attest"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
)

var _ providers.WorkloadAttester = (*Provider)(nil)

// AttestPeer implements providers.WorkloadAttester: the connection's client
// socket (its local end is peer, its remote end the control plane's local)
// is looked up in the kernel's socket tables, and its inode among the open
// descriptors of each workload's process tree — the shim's child and its
// descendants, each checked against its start time, so that a recycled pid
// never counts. Another user's process cannot be read, and no process
// outside the pipeline's components is looked at.
func (p *Provider) AttestPeer(ctx context.Context, peer, local netip.AddrPort, ws []providers.Workload) (providers.Attestation, error) {
	sock, err := attest.LookupSocket(peer, local)
	if errors.Is(err, attest.ErrNoSocket) {
		return providers.Attestation{}, fmt.Errorf("no TCP socket on this machine is the client end of %s (the call did not come from a local process)", peer)
	}
	if err != nil {
		return providers.Attestation{}, err
	}
	if sock.Inode == 0 {
		return providers.Attestation{}, fmt.Errorf("the socket of %s is held by no process any more", peer)
	}
	// The component's own process first (it usually holds the connection);
	// the processes it started only when none does.
	type root struct {
		addr string
		hd   handle
	}
	var roots []root
	looked := 0
	for _, w := range ws {
		hd, err := decodeHandle(w.Handle)
		if err != nil || !alive(hd.BootID, hd.Child) {
			continue
		}
		roots = append(roots, root{w.Address, hd})
		looked++
		if holds(hd.Child, sock.Inode) {
			return providers.Attestation{Address: w.Address, Proof: "pid " + strconv.Itoa(hd.Child.PID)}, nil
		}
	}
	for _, r := range roots {
		if ctx.Err() != nil {
			return providers.Attestation{}, ctx.Err()
		}
		for _, pid := range attest.Tree(r.hd.Child.PID)[1:] {
			looked++
			id, err := procinfo.Of(pid)
			if err == nil && holds(id, sock.Inode) && alive(r.hd.BootID, r.hd.Child) {
				return providers.Attestation{Address: r.addr, Proof: "pid " + strconv.Itoa(pid)}, nil
			}
		}
	}
	running := len(roots)
	if running == 0 {
		return providers.Attestation{}, fmt.Errorf("none of the pipeline's %d process components runs (yet)", len(ws))
	}
	return providers.Attestation{}, fmt.Errorf("the connection from %s belongs to no process of the pipeline's components (looked at %d processes of %d running components)", peer, looked, running)
}

// holds says whether the process id names holds the socket inode: it
// does, and its pid named that same process once its descriptors were
// read (a pid reused meanwhile names another start time).
func holds(id procinfo.Identity, inode uint64) bool {
	ok, err := attest.HoldsSocket(id.PID, inode)
	if err != nil || !ok {
		return false
	}
	return procinfo.Alive(id)
}
