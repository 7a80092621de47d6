package plan

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// Reality is what the providers reported when a plan was made: the value
// Observe fills and Decide reads, so that every decision can be made, and
// tested, without a provider.
type Reality struct {
	// Observed holds the object of each recorded component as its provider
	// sees it, by address (Observed.Address set). Empty when the plan does
	// not refresh.
	Observed map[string]*providers.Observed
	// Listed holds every object the providers in use hold labelled with
	// the pipeline, recorded or not, by address then fingerprint.
	Listed []Listed
	// SelfRestarting names the executors that run their components' health
	// checks and restart policies themselves (providers.SelfRestarter).
	SelfRestarting map[string]bool
	// ClusterChanges holds, by address, the paths of an existing object's
	// fields its executor's dry run says would change
	// (providers.PlanChecker).
	ClusterChanges map[string][]string
	// specs are the desired components' spec hashes the plan check
	// computed, for Decide (specOf).
	specs map[*config.Component]hashedSpec
}

// Listed is one object a provider listed, and which provider.
type Listed struct {
	Provider string
	Object   providers.Observed
}

// observeParallelism bounds the Observe calls in flight.
const observeParallelism = 16

// Observe asks each record's provider about its object, and every
// provider in use for the objects it holds of this pipeline. With
// Options.NoRefresh it asks nothing: state is taken as the truth.
func Observe(ctx context.Context, in Input) (Reality, error) {
	r := Reality{Observed: map[string]*providers.Observed{}, SelfRestarting: selfRestarting(in.Providers)}
	if in.Options.NoRefresh {
		return r, nil
	}
	provs, err := recordProviders(in)
	if err != nil {
		return Reality{}, err
	}
	listed, err := listObjects(ctx, in)
	if err != nil {
		return Reality{}, err
	}
	observed, err := observeRecords(ctx, in, provs, listed)
	if err != nil {
		return Reality{}, err
	}
	r.Observed, r.Listed = observed, listed
	if err := checkPlans(ctx, in, &r); err != nil {
		return Reality{}, err
	}
	return r, nil
}

// selfRestarting names the registered providers that restart their own.
func selfRestarting(reg *providers.Registry) map[string]bool {
	out := map[string]bool{}
	if reg == nil {
		return out
	}
	for _, p := range reg.All() {
		if sr, ok := p.(providers.SelfRestarter); ok && sr.RestartsItself() {
			out[p.Name()] = true
		}
	}
	return out
}

// observeRecords asks each record's provider about its object, several at
// a time; the first error wins.
// recordProviders is the executor of each record, in order.
func recordProviders(in Input) ([]providers.Provider, error) {
	provs := make([]providers.Provider, len(in.Records))
	for i, r := range in.Records {
		prov, err := in.Providers.Get(r.Provider)
		if err != nil {
			return nil, fmt.Errorf("observe %s: %w", r.Address, err)
		}
		provs[i] = prov
	}
	return provs, nil
}

// providerKey names an object by its executor and a string of its own
// (its handle, its fingerprint): a map key built without a concatenation.
type providerKey struct{ provider, key string }

func observeRecords(ctx context.Context, in Input, provs []providers.Provider, listed []Listed) (map[string]*providers.Observed, error) {
	// What the executor listed under the very handle a record holds is
	// what observing that handle would return: it is not asked twice (at
	// 1,000 process components, half of a plan's refresh). An object whose
	// end is still being written down is observed, which waits for it.
	byHandle := make(map[providerKey]*providers.Observed, len(listed))
	for i := range listed {
		if o := &listed[i].Object; len(o.Handle) > 0 && !o.ExitPending {
			byHandle[providerKey{listed[i].Provider, string(o.Handle)}] = o
		}
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, observeParallelism)
		observed = make(map[string]*providers.Observed, len(in.Records))
	)
	for i, r := range in.Records {
		if len(r.Handle) == 0 {
			// No object recorded (a replacement whose start failed):
			// nothing exists to ask about.
			mu.Lock()
			observed[r.Address] = &providers.Observed{Address: r.Address}
			mu.Unlock()
			continue
		}
		if l, ok := byHandle[providerKey{r.Provider, string(r.Handle)}]; ok {
			o := *l
			o.Address = r.Address
			mu.Lock()
			observed[r.Address] = &o
			mu.Unlock()
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(prov providers.Provider, r *state.Record) {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := prov.Observe(ctx, r.Handle)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("observe %s with executor %s: %w", r.Address, r.Provider, err)
				}
				return
			}
			o.Address = r.Address
			observed[r.Address] = &o
		}(provs[i], r)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return observed, nil
}

// listObjects asks every provider in use (by a desired component or a
// record) for the objects it holds of the pipeline.
func listObjects(ctx context.Context, in Input) ([]Listed, error) {
	used := map[string]bool{}
	if in.Desired != nil {
		for _, c := range in.Desired.Components {
			used[c.Executor] = true
		}
	}
	for _, r := range in.Records {
		used[r.Provider] = true
	}
	names := sortedKeys(used)
	lists := make([][]providers.Observed, len(names))
	total := 0
	for i, name := range names {
		prov, err := in.Providers.Get(name)
		if err != nil {
			return nil, err
		}
		objs, err := prov.List(ctx, pipelineName(in))
		if err != nil {
			return nil, fmt.Errorf("list objects of executor %s: %w", name, err)
		}
		lists[i] = objs
		total += len(objs)
	}
	// One allocation, and no sort when the executors listed in order
	// already (one executor, sorted): at 10,000 objects the copies of
	// growing the slice and the stable sort's swaps were a fifth of
	// Make's allocations.
	listed := make([]Listed, 0, total)
	for i, name := range names {
		for _, o := range lists[i] {
			listed = append(listed, Listed{Provider: name, Object: o})
		}
	}
	if !slices.IsSortedFunc(listed, compareListed) {
		slices.SortStableFunc(listed, compareListed)
	}
	return listed, nil
}

// compareListed orders listed objects by address, then fingerprint.
func compareListed(a, b Listed) int {
	if c := strings.Compare(a.Object.Address, b.Object.Address); c != 0 {
		return c
	}
	return strings.Compare(a.Object.Fingerprint, b.Object.Fingerprint)
}

// pipelineName is the pipeline planned: the desired one's, or state's.
func pipelineName(in Input) string {
	if in.Desired != nil {
		return in.Desired.Name
	}
	return in.Meta.Pipeline
}
