package apply

import (
	"context"
	"errors"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/state"
)

// Restart stops rec's instance and starts a new one of comp (a new
// instance ID and token, the same ports) as one change of action restart,
// recorded in history with reason. It returns the new instance's ID, also
// when that instance failed to become ready (so that the caller tells its
// next failure from the old instance's), or "" when nothing was started.
// The caller holds the operation lock; comp carries the full environment.
func (e *Engine) Restart(ctx context.Context, rec *state.Record, comp *config.Component, reason string, opts Options) (string, error) {
	if opts.WorkDir == "" {
		opts.WorkDir = rec.WorkDir
	}
	var pipeline string
	if err := e.wiring.Store.View(func(tx *state.Tx) error { pipeline = tx.Meta().Pipeline; return nil }); err != nil {
		return "", err
	}
	p := &plan.Plan{Pipeline: pipeline, Changes: []*plan.Change{{
		Address: rec.Address, Action: plan.Restart, Reason: plan.Reason(reason),
		Provider: rec.Provider, PriorProvider: rec.Provider, Handle: rec.Handle,
		SpecHash: rec.SpecHash, Spec: rec.Spec,
	}}}
	desired := &config.Pipeline{Name: pipeline, Components: []*config.Component{comp}}
	res, err := e.Apply(ctx, nil, p, desired, opts)
	if res == nil || len(res.Outcomes) == 0 {
		return "", err
	}
	o := res.Outcomes[0]
	if err != nil {
		if o.Err != nil {
			err = o.Err
		} else if o.Skipped != "" {
			err = errors.New(o.Skipped)
		}
	}
	return o.InstanceID, err
}
