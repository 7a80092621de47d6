package kubernetes

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Placeholder ports of a dry run: the ports apply allocates are not known
// at plan.
const (
	dryRunPort       = 10000
	dryRunHealthPort = 10001
)

// CheckPlan implements providers.PlanChecker: every object the components
// would become is sent to the API server as a server-side dry run, so that
// what it would refuse (an invalid name, a ResourceQuota exceeded, an
// admission webhook's veto, a field it rejects) fails the plan. When the
// namespace does not exist yet, its creation is dry-run and the objects
// are dry-run in "default": names and fields are judged, the new
// namespace's quotas cannot be.
func (p *Provider) CheckPlan(ctx context.Context, pl *config.Pipeline, components []*config.Component) error {
	if len(components) == 0 {
		return nil
	}
	k := p.cluster()
	c, err := p.client(k)
	if err != nil {
		return err
	}
	ns, owned := p.Namespace(pl.Name)
	standIn := false
	if _, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		if err := p.ensureNamespace(ctx, k, c, ns, owned, pl.Name, true); err != nil {
			return err
		}
		ns, standIn = "default", true
	} else if err := p.ensureNamespace(ctx, k, c, ns, owned, pl.Name, true); err != nil {
		return err
	}
	for _, comp := range components {
		spec := dryRunSpec(pl, comp)
		err := p.applyObjects(ctx, k, c, build(&spec, ns, ""), true)
		if err != nil && standIn && apierrors.IsForbidden(err) {
			// "default" only stood in for a namespace not made yet: a
			// user without rights there is not refused for it.
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", comp.Address(), err)
		}
	}
	return nil
}

// dryRunSpec is comp as Start would get it, with what only apply knows
// (ports, token, resolved references) stood in for.
func dryRunSpec(pl *config.Pipeline, comp *config.Component) providers.ComponentSpec {
	env := map[string]string{}
	for k, v := range comp.Env {
		env[k] = v.Value
	}
	env[contract.EnvComponentToken] = "dry-run"
	ports := map[string]int{contract.EnvPort: dryRunPort, contract.EnvHealthPort: dryRunHealthPort}
	return providers.ComponentSpec{Pipeline: pl.Name, Lineage: "dry-run", InstanceID: "dry-run", SpecHash: "dry-run",
		Component: comp, Env: env, Ports: ports}
}
