package workspace

import (
	"context"

	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/serve"
)

// ObserveControlPlane is the control plane of ws as a plan sees it, or nil
// when it is not planned: for a destroy (which stops it), without a
// refresh, or when the operator or the pipeline names one.
func (ws *Workspace) ObserveControlPlane(ctx context.Context, opts plan.Options) *plan.ControlPlaneSeen {
	if opts.Destroy || opts.NoRefresh {
		return nil
	}
	named := ws.ControlPlane
	if named == "" && ws.Pipeline != nil {
		named = ws.Pipeline.ControlPlane
	}
	if ws.Store == nil && named == "" {
		return &plan.ControlPlaneSeen{Managed: true, Detail: "it is not running"} // no state yet
	}
	seen, err := serve.ObserveControlPlane(ctx, ws.Store, named)
	if err != nil {
		return nil // an unreadable serve record: Ensure replaces it
	}
	return seen
}
