package plan

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/flowctl/flowctl/internal/state"
)

// WorldEntry is one component of the recorded desired world: what was
// asked for (the executor and spec hash an apply recorded), not which
// object answers it. A restart by the watcher leaves it unchanged; an
// apply, a destroy or a state edit changes it.
type WorldEntry struct {
	Address  string `json:"address"`
	Provider string `json:"provider"`
	SpecHash string `json:"spec_hash"`
}

// ActedOn is what the plan saw of a recorded component it changes: the
// instance and its status, which a restart or a crash changes.
type ActedOn struct {
	Address    string `json:"address"`
	InstanceID string `json:"instance_id,omitempty"`
	Status     string `json:"status"`
}

// worldOf is the recorded desired world of recs, by address.
func worldOf(recs []*state.Record) []WorldEntry {
	out := make([]WorldEntry, 0, len(recs))
	for _, r := range recs {
		out = append(out, WorldEntry{Address: r.Address, Provider: r.Provider, SpecHash: r.SpecHash})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// actedOn is the set of addresses p changes (every change but a no-op).
func actedOn(p *Plan) map[string]bool {
	out := map[string]bool{}
	for _, ch := range p.Changes {
		if ch.Action != NoOp {
			out[ch.Address] = true
		}
	}
	return out
}

// actsOn is what p's changes act on among recs.
func actsOn(p *Plan, recs []*state.Record) []ActedOn {
	acts := actedOn(p)
	out := []ActedOn{}
	for _, r := range recs {
		if acts[r.Address] {
			out = append(out, ActedOn{Address: r.Address, InstanceID: r.InstanceID, Status: r.Status})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// StaleError says why a saved plan no longer applies.
type StaleError struct{ Reasons []string }

func (e *StaleError) Error() string {
	return "the saved plan is stale: " + strings.Join(e.Reasons, "; ") + "\nRun flowctl plan again, review it, and apply the new plan."
}

// CheckFresh tells whether the saved plan still applies to the state and
// reality of in (in.Desired may be nil). The rule (docs/plan-format.md):
//   - the state must be the one the plan was made against (its lineage), or,
//     for a plan made with no state, a state where nothing was ever recorded;
//   - the recorded desired world (each component's executor and spec hash,
//     and the token secret generation) must be what the plan saw: an apply,
//     a destroy or a state edit (state rm, tokens rotate) since makes the
//     plan stale;
//   - each recorded component the plan changes must still be the instance,
//     in the status, the plan saw, and its objects must be the ones the plan
//     observed.
//
// Restarts of components the plan leaves alone change none of these. A
// version 1 file, which recorded no world, is stale when the serial moved.
func (f *File) CheckFresh(ctx context.Context, in Input) error {
	p := f.Plan
	var reasons []string
	switch {
	case p.Lineage == "" && in.Meta.Lineage != "" && (in.Meta.Serial != 0 || len(in.Records) > 0):
		reasons = append(reasons, fmt.Sprintf("the plan was made with no state, and there is now a state with lineage %s at serial %d (something was applied since)", in.Meta.Lineage, in.Meta.Serial))
	case p.Lineage != "" && in.Meta.Lineage != p.Lineage:
		why := fmt.Sprintf("the state's lineage is %s, the plan was made for %s (another state)", in.Meta.Lineage, p.Lineage)
		if f.State != "" && in.State != "" && f.State != in.State {
			why += fmt.Sprintf(": the plan was made against %s, this is %s", f.State, in.State)
		}
		reasons = append(reasons, why)
	case f.FormatVersion < 2 && in.Meta.Serial != p.Serial:
		reasons = append(reasons, fmt.Sprintf("the state changed since the plan was made (serial %d, plan made at serial %d)", in.Meta.Serial, p.Serial))
	case f.FormatVersion >= 2:
		reasons = append(reasons, worldDiff(f.World, worldOf(in.Records))...)
		if g := in.Meta.TokenGeneration; p.Lineage != "" && g != f.TokenGeneration {
			reasons = append(reasons, fmt.Sprintf("the token secret was rotated since the plan was made (generation %d, the plan saw %d): the components it leaves alone need new tokens too", g, f.TokenGeneration))
		}
		reasons = append(reasons, actsDiff(f.ActsOn, in.Records)...)
	}
	if len(reasons) == 0 {
		now, err := Make(ctx, in)
		if err != nil {
			return fmt.Errorf("check plan against reality: %w", err)
		}
		then, is := p.Reality, now.Reality
		if f.FormatVersion >= 2 {
			acts := actedOn(p)
			then, is = seenAt(then, acts), seenAt(is, acts)
		}
		reasons = append(reasons, realityDiff(then, is)...)
	}
	if len(reasons) > 0 {
		return &StaleError{Reasons: reasons}
	}
	return nil
}

// worldDiff says how the recorded desired world changed.
func worldDiff(then, now []WorldEntry) []string {
	was := map[string]WorldEntry{}
	for _, e := range then {
		was[e.Address] = e
	}
	is := map[string]WorldEntry{}
	for _, e := range now {
		is[e.Address] = e
	}
	var out []string
	for _, e := range now {
		w, ok := was[e.Address]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s was added to the state since the plan was made (an apply or a state edit)", e.Address))
		case w.Provider != e.Provider:
			out = append(out, fmt.Sprintf("%s is now recorded on executor %s, the plan saw %s (an apply or a state edit since)", e.Address, e.Provider, w.Provider))
		case w.SpecHash != e.SpecHash:
			out = append(out, fmt.Sprintf("%s was applied with another configuration since the plan was made (spec %s, the plan saw %s)", e.Address, short(e.SpecHash), short(w.SpecHash)))
		}
	}
	for _, e := range then {
		if _, ok := is[e.Address]; !ok {
			out = append(out, fmt.Sprintf("%s was removed from the state since the plan was made (a destroy or a state edit)", e.Address))
		}
	}
	return out
}

// actsDiff says which component the plan changes is no longer the instance,
// or in the status, the plan saw.
func actsDiff(then []ActedOn, recs []*state.Record) []string {
	byAddr := map[string]*state.Record{}
	for _, r := range recs {
		byAddr[r.Address] = r
	}
	var out []string
	for _, a := range then {
		r := byAddr[a.Address]
		switch {
		case r == nil:
			// worldDiff says it was removed.
		case r.InstanceID != a.InstanceID:
			out = append(out, fmt.Sprintf("%s, which the plan changes, was restarted since the plan was made (instance %s, the plan saw %s)", a.Address, orNone(short(r.InstanceID)), orNone(short(a.InstanceID))))
		case r.Status != a.Status:
			out = append(out, fmt.Sprintf("%s, which the plan changes, is now %s (the plan saw it %s)", a.Address, r.Status, a.Status))
		}
	}
	return out
}

// seenAt keeps the objects at the given addresses.
func seenAt(list []Seen, addrs map[string]bool) []Seen {
	var out []Seen
	for _, s := range list {
		if addrs[s.Address] {
			out = append(out, s)
		}
	}
	return out
}

// orNone is s, or "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
