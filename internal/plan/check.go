package plan

import (
	"context"
	"fmt"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// checkPlans asks each provider that can (providers.PlanChecker) to judge
// the components the plan would create or change on it: those state does
// not record, whose spec changed, whose executor changed, or whose object
// is gone or changed outside flowctl. What they say the system would change
// of existing objects is kept in r.ClusterChanges.
func checkPlans(ctx context.Context, in Input, r *Reality) error {
	if in.Desired == nil {
		return nil
	}
	if err := checkSpecKey(in); err != nil {
		return err
	}
	recs := map[string]*state.Record{}
	for _, rec := range in.Records {
		recs[rec.Address] = rec
	}
	byProvider := map[string][]*config.Component{}
	for _, c := range in.Desired.Components {
		rec := recs[c.Address()]
		hash, spec := hashAndSpec(c, in.SpecKey)
		if r.specs == nil {
			r.specs = make(map[*config.Component]hashedSpec, len(in.Desired.Components))
		}
		r.specs[c] = hashedSpec{in.SpecKey, hash, spec}
		obs := r.Observed[c.Address()]
		if rec == nil || !sameSpec(c, rec.SpecHash, hash) || rec.Provider != c.Executor ||
			(obs != nil && (!obs.Exists || (obs.SpecHash != "" && obs.SpecHash != objectHash(rec)))) {
			byProvider[c.Executor] = append(byProvider[c.Executor], c)
		}
	}
	for _, name := range sortedKeys(byProvider) {
		prov, err := in.Providers.Get(name)
		if err != nil {
			return err
		}
		if pc, ok := prov.(providers.PlanChecker); ok {
			changes, err := pc.CheckPlan(ctx, in.Desired, byProvider[name])
			if err != nil {
				return fmt.Errorf("the %s executor refuses the plan: %w", name, err)
			}
			for addr, paths := range changes {
				if r.ClusterChanges == nil {
					r.ClusterChanges = map[string][]string{}
				}
				r.ClusterChanges[addr] = paths
			}
		}
	}
	return nil
}
