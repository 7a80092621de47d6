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
	sock, err := attest.FindSocket(attest.TCPTables, peer, local)
	if errors.Is(err, attest.ErrNoSocket) {
		return providers.Attestation{}, fmt.Errorf("no TCP socket on this machine is the client end of %s (the call did not come from a local process)", peer)
	}
	if err != nil {
		return providers.Attestation{}, err
	}
	if sock.Inode == 0 {
		return providers.Attestation{}, fmt.Errorf("the socket of %s is held by no process any more", peer)
	}
	running, looked := 0, 0
	for _, w := range ws {
		if ctx.Err() != nil {
			return providers.Attestation{}, ctx.Err()
		}
		hd, err := decodeHandle(w.Handle)
		if err != nil || !alive(hd.BootID, hd.Child) {
			continue
		}
		running++
		for _, pid := range attest.Tree(hd.Child.PID) {
			looked++
			if holds(pid, sock.Inode) && alive(hd.BootID, hd.Child) {
				return providers.Attestation{Address: w.Address, Proof: "pid " + strconv.Itoa(pid)}, nil
			}
		}
	}
	if running == 0 {
		return providers.Attestation{}, fmt.Errorf("none of the pipeline's %d process components runs (yet)", len(ws))
	}
	return providers.Attestation{}, fmt.Errorf("the connection from %s belongs to no process of the pipeline's components (looked at %d processes of %d running components)", peer, looked, running)
}

// holds says whether pid holds the socket inode, and was the same process
// before and after its descriptors were read.
func holds(pid int, inode uint64) bool {
	before, err := procinfo.Of(pid)
	if err != nil {
		return false
	}
	ok, err := attest.HoldsSocket(pid, inode)
	if err != nil || !ok {
		return false
	}
	after, err := procinfo.Of(pid)
	return err == nil && after == before
}
