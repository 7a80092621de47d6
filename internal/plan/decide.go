package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// Decide makes the plan from the desired pipeline and the state records
// in in, and from r, what the providers reported (Observe). It calls no
// provider: a plan is a function of these values. With Options.NoRefresh
// it ignores r's objects and takes state as the truth.
func Decide(in Input, r Reality) (*Plan, error) {
	if err := checkSpecKey(in); err != nil {
		return nil, err
	}
	if in.Options.NoRefresh {
		r.Observed, r.Listed, r.ClusterChanges = nil, nil, nil
	}
	d := newDecider(in, r)
	unrecorded := d.see()
	changes := d.desiredChanges(unrecorded)
	changes = append(changes, d.deletes()...)
	changes = append(changes, d.orphans(unrecorded)...)
	changes = filterTargets(changes, in)
	d.p.ControlPlane = d.decideControlPlane(changes)
	ordered, err := order(changes)
	if err != nil {
		return nil, err
	}
	d.p.Changes = ordered
	sort.Slice(d.p.Reality, func(i, j int) bool {
		if d.p.Reality[i].Address != d.p.Reality[j].Address {
			return d.p.Reality[i].Address < d.p.Reality[j].Address
		}
		return d.p.Reality[i].Fingerprint < d.p.Reality[j].Fingerprint
	})
	return d.p, nil
}

// decider holds one Decide's inputs, indexed, and the plan it builds.
type decider struct {
	in      Input
	r       Reality
	p       *Plan
	records map[string]*state.Record
	desired map[string]*config.Component
	replace map[string]bool
	// adopted marks the unrecorded objects a desired component adopts.
	adopted map[int]bool
}

func newDecider(in Input, r Reality) *decider {
	p := &Plan{Pipeline: in.Meta.Pipeline, Lineage: in.Meta.Lineage, Serial: in.Meta.Serial, Destroy: in.Options.Destroy, Desired: in.Desired}
	if in.Desired != nil {
		p.Pipeline = in.Desired.Name
	}
	p.Targets = append([]string(nil), in.Options.Targets...)
	sort.Strings(p.Targets)
	d := &decider{in: in, r: r, p: p, records: make(map[string]*state.Record, len(in.Records)), desired: map[string]*config.Component{}, replace: map[string]bool{}, adopted: map[int]bool{}}
	for _, rec := range in.Records {
		d.records[rec.Address] = rec
	}
	if in.Desired != nil && !in.Options.Destroy {
		d.desired = make(map[string]*config.Component, len(in.Desired.Components))
		for _, c := range in.Desired.Components {
			d.desired[c.Address()] = c
		}
	}
	for _, a := range in.Options.Replace {
		d.replace[a] = true
	}
	return d
}

// see writes down in the plan every object it saw, and returns the listed
// objects state does not record. Those of another lineage are foreign:
// shown, never acted on.
func (d *decider) see() []Listed {
	// Objects state knows, by fingerprint, to tell them from unrecorded ones.
	known := make(map[providerKey]bool, len(d.r.Observed))
	d.p.Reality = slices.Grow(d.p.Reality, len(d.r.Observed))
	for addr, o := range d.r.Observed {
		prov := d.records[addr].Provider
		d.p.Reality = append(d.p.Reality, Seen{Address: addr, Provider: prov, Exists: o.Exists, Running: o.Running, Fingerprint: o.Fingerprint, InState: true, Lineage: o.Lineage})
		if o.Exists {
			known[providerKey{prov, o.Fingerprint}] = true
		}
	}
	var unrecorded []Listed
	for _, lo := range d.r.Listed {
		if known[providerKey{lo.Provider, lo.Object.Fingerprint}] {
			continue
		}
		o := lo.Object
		seen := Seen{Address: o.Address, Provider: lo.Provider, Exists: true, Running: o.Running, Fingerprint: o.Fingerprint, Lineage: o.Lineage}
		if o.Lineage != "" && d.in.Meta.Lineage != "" && o.Lineage != d.in.Meta.Lineage {
			d.p.Foreign = append(d.p.Foreign, seen)
			continue
		}
		d.p.Reality = append(d.p.Reality, seen)
		unrecorded = append(unrecorded, lo)
	}
	return unrecorded
}

// desiredChanges plans every desired component, by address, and notes
// the drift found on the way.
func (d *decider) desiredChanges(unrecorded []Listed) []*Change {
	var changes []*Change
	for _, addr := range sortedKeys(d.desired) {
		c := d.desired[addr]
		hash, spec := d.r.specOf(c, d.in.SpecKey)
		ch := decideComponent(c, hash, spec, d.records[addr], d.r.Observed[addr], d.replace[addr], d.r.SelfRestarting[c.Executor], d.in.Meta.TokenGeneration)
		if ch.Action == Update || ch.Action == Replace {
			ch.ClusterChanges = d.r.ClusterChanges[addr]
		}
		if ch.Action == Create {
			d.adoptTwin(ch, c, unrecorded)
		}
		if dr := driftOf(ch); dr != nil {
			d.p.Drift = append(d.p.Drift, dr)
		}
		changes = append(changes, ch)
	}
	return changes
}

// adoptTwin turns the creation of c into an adoption when an unrecorded
// object is this very component, running: rather than start a twin. State
// may still name an earlier object that is gone: an apply that replaced
// it was killed between the new start and its state write.
func (d *decider) adoptTwin(ch *Change, c *config.Component, unrecorded []Listed) {
	for i, lo := range unrecorded {
		o := lo.Object
		if d.adopted[i] || o.Address != ch.Address || lo.Provider != c.Executor || !o.Running || !sameSpec(c, o.SpecHash, ch.SpecHash) {
			continue
		}
		d.adopted[i] = true
		ch.Action, ch.Reason, ch.Handle = Adopt, ReasonAdoptUnrecorded, o.Handle
		ch.Observed = &o
		return
	}
}

// deletes plans the removal of every recorded component no longer desired.
func (d *decider) deletes() []*Change {
	var changes []*Change
	for _, addr := range sortedKeys(d.records) {
		if _, ok := d.desired[addr]; ok {
			continue
		}
		r := d.records[addr]
		reason := ReasonNotInConfig
		if d.in.Options.Destroy {
			reason = ReasonDestroy
		}
		ch := &Change{Address: addr, Action: Delete, Reason: reason, PriorProvider: r.Provider, Provider: r.Provider, Handle: r.Handle, Upstreams: specUpstreams(r.Spec)}
		if o, ok := d.r.Observed[addr]; ok {
			oc := *o
			ch.Observed = &oc
		}
		ch.Attrs = diffAttrs(r.Spec, nil, nil)
		changes = append(changes, ch)
	}
	return changes
}

// orphans plans the removal of every unrecorded object of this pipeline
// that no component adopts, and notes each as drift.
func (d *decider) orphans(unrecorded []Listed) []*Change {
	var changes []*Change
	for i, lo := range unrecorded {
		if d.adopted[i] {
			continue
		}
		o := lo.Object
		changes = append(changes, &Change{Address: o.Address, Action: DeleteOrphan, Reason: ReasonOrphan, Provider: lo.Provider, PriorProvider: lo.Provider, Handle: o.Handle, Observed: &o})
		d.p.Drift = append(d.p.Drift, &Drift{Address: o.Address, Reason: ReasonOrphan, Detail: fmt.Sprintf("a %s object of this pipeline that state does not record (%s)", lo.Provider, o.Fingerprint)})
	}
	return changes
}

// decideComponent plans desired component c, of spec hash hash and
// canonical spec spec, against its record (nil: not in state) and its
// object as observed (nil: not looked at); selfRestarts says c's executor restarts
// and checks it itself; tokenGen is the state's token-secret generation
// (state.Meta).
func decideComponent(c *config.Component, hash string, spec json.RawMessage, rec *state.Record, obs *providers.Observed, replace, selfRestarts bool, tokenGen uint64) *Change {
	ch := &Change{Address: c.Address(), Provider: c.Executor, SpecHash: hash, Spec: spec, Upstreams: c.Upstreams()}
	if rec == nil {
		ch.Action, ch.Reason = Create, ReasonNotInState
		ch.Attrs = diffAttrs(nil, ch.Spec, sensitiveKeys(c))
		return ch
	}
	ch.PriorProvider, ch.Handle = rec.Provider, rec.Handle
	if obs != nil {
		o := *obs
		ch.Observed = &o
	}
	// The same hash is the same canonical spec: nothing to compare, which
	// is most components of most plans.
	same := sameSpec(c, rec.SpecHash, ch.SpecHash)
	if !same {
		ch.Attrs = specChanges(c, rec.Spec, ch.Spec, selfRestarts)
	}
	for _, a := range ch.Attrs {
		if a.Forces {
			ch.ForcedBy = append(ch.ForcedBy, a.Path)
		}
	}
	s := situation{rec: rec, obs: obs, executor: c.Executor, sameSpec: same, forced: len(ch.ForcedBy) > 0, replace: replace, tokenGen: tokenGen}
	ch.Action, ch.Reason = s.decide()
	if ch.Reason == ReasonDeletedOutside {
		ch.Handle = nil
	}
	return ch
}

// specChanges lists the attributes that differ between the recorded spec
// and the desired one, marking those that force a new instance.
func specChanges(c *config.Component, oldSpec, newSpec json.RawMessage, selfRestarts bool) []AttrChange {
	attrs := diffAttrs(oldSpec, newSpec, sensitiveKeys(c))
	if selfRestarts {
		for i := range attrs {
			if forcesOnSelfRestarter(attrs[i].Path) {
				attrs[i].Forces = true
			}
		}
	}
	if !hasVisibleChange(attrs) {
		// Only a sensitive value changed: the hash says so, the redacted
		// specs cannot. Name every sensitive variable.
		for _, k := range sensitiveKeys(c) {
			attrs = append(attrs, AttrChange{Path: "env." + k, Old: config.RedactedValue, New: config.RedactedValue, HasOld: true, HasNew: true, Sensitive: true, Forces: true})
		}
	}
	return attrs
}

// situation is what decides the action on a desired component that state
// records.
type situation struct {
	rec *state.Record
	// obs is its object as observed; nil when not looked at.
	obs      *providers.Observed
	executor string
	// sameSpec: the record's spec hash is the desired spec's (sameSpec).
	sameSpec bool
	// forced: an attribute that changed forces a new instance.
	forced bool
	// replace: -replace asks for it.
	replace  bool
	tokenGen uint64
}

// decide picks the action. The order matters: the first case that holds
// wins.
func (s situation) decide() (Action, Reason) {
	switch {
	case s.replace:
		return Replace, ReasonReplaceByRequest
	case s.gone():
		return Create, ReasonDeletedOutside
	case s.rec.Provider != s.executor:
		return Replace, ReasonExecutorChanged
	case s.changedOutside():
		return Replace, ReasonChangedOutside
	case s.forced:
		return Replace, ReasonSpecChanged
	case s.rec.Status == state.StatusFailed:
		return Replace, ReasonTainted
	case s.tokenRotated():
		return Replace, ReasonTokenRotated
	case s.unconfirmed():
		// The last apply started it but stopped before seeing it ready:
		// take it as it is once it proves ready.
		return Adopt, ReasonStartUnconfirmed
	case !s.sameSpec:
		return Update, ReasonSpecChanged
	case s.obs != nil && !s.obs.Running:
		return Restart, ReasonExited
	}
	return NoOp, ReasonUpToDate
}

// gone: the recorded object no longer exists.
func (s situation) gone() bool { return s.obs != nil && !s.obs.Exists }

// changedOutside: the object carries a spec hash other than the one
// flowctl wrote on it.
func (s situation) changedOutside() bool {
	return s.obs != nil && s.obs.SpecHash != "" && s.obs.SpecHash != objectHash(s.rec)
}

// tokenRotated: its token is refused since `flowctl tokens rotate`
// (generation 0: it was given none).
func (s situation) tokenRotated() bool {
	return s.rec.TokenGeneration > 0 && s.rec.TokenGeneration < s.tokenGen
}

// unconfirmed: started by an apply that ended before seeing it ready, it
// runs the desired spec.
func (s situation) unconfirmed() bool {
	return s.rec.Status == state.StatusCreating && s.obs != nil && s.obs.Running && s.sameSpec
}

// objectHash is the spec hash flowctl wrote on r's object.
func objectHash(r *state.Record) string {
	if r.ObjectSpecHash != "" {
		return r.ObjectSpecHash
	}
	return r.SpecHash
}

// driftOf is the drift a change reveals, if any.
func driftOf(ch *Change) *Drift {
	if d := imageTagMoved(ch); d != nil {
		return d
	}
	switch ch.Reason {
	case ReasonDeletedOutside:
		return &Drift{Address: ch.Address, Reason: ch.Reason, Detail: "recorded in state, but the object no longer exists"}
	case ReasonChangedOutside:
		return &Drift{Address: ch.Address, Reason: ch.Reason, Detail: fmt.Sprintf("the object's spec hash is %s, not the one flowctl recorded", short(ch.Observed.SpecHash))}
	case ReasonExited:
		d := "recorded as running, but it is not"
		if ch.Observed != nil && ch.Observed.Detail != "" {
			d += " (" + ch.Observed.Detail + ")"
		}
		return &Drift{Address: ch.Address, Reason: ch.Reason, Detail: d}
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func hasVisibleChange(attrs []AttrChange) bool {
	for _, a := range attrs {
		if a.HasOld != a.HasNew || a.Old != a.New {
			return true
		}
	}
	return false
}

func sensitiveKeys(c *config.Component) []string {
	var out []string
	for k, v := range c.Env {
		if v.Sensitive {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
