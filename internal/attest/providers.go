package attest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
)

// Providers is the control plane's Attestor over a set of executors: each
// candidate is checked by the executor that runs it, when that executor
// implements providers.WorkloadAttester.
type Providers struct {
	Registry *providers.Registry
}

var _ controlplane.Attestor = Providers{}

// Attest implements controlplane.Attestor.
func (p Providers) Attest(ctx context.Context, peer, local netip.AddrPort, candidates []controlplane.ExpectedComponent) (controlplane.Attested, error) {
	byProvider := map[string][]providers.Workload{}
	for _, c := range candidates {
		if c.Provider == "" || len(c.Handle) == 0 {
			continue // being started: no object yet
		}
		byProvider[c.Provider] = append(byProvider[c.Provider], providers.Workload{Address: c.Address, Handle: c.Handle})
	}
	if len(byProvider) == 0 {
		return controlplane.Attested{}, errors.New("the pipeline's state records no running component yet")
	}
	names := make([]string, 0, len(byProvider))
	for n := range byProvider {
		names = append(names, n)
	}
	sort.Strings(names)
	var reasons, cannot []string
	for _, name := range names {
		prov, err := p.Registry.Get(name)
		if err != nil {
			cannot = append(cannot, name)
			continue
		}
		wa, ok := prov.(providers.WorkloadAttester)
		if !ok {
			cannot = append(cannot, name)
			continue
		}
		a, err := wa.AttestPeer(ctx, peer, local, byProvider[name])
		if err == nil {
			return controlplane.Attested{Address: a.Address, Proof: a.Proof}, nil
		}
		reasons = append(reasons, name+": "+err.Error())
	}
	if len(reasons) == 0 {
		return controlplane.Attested{}, fmt.Errorf("%w (the %s executor cannot attest the workloads it runs: send a token, or set auth = \"permissive\")",
			controlplane.ErrCannotAttest, strings.Join(cannot, ", "))
	}
	return controlplane.Attested{}, errors.New(strings.Join(reasons, "; "))
}
