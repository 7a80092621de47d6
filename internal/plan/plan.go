package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
)

// Reasons about a component's last start.
const (
	// ReasonTainted marks a component whose last start never became ready.
	ReasonTainted Reason = "tainted"
	// ReasonStartUnconfirmed marks one started by an apply that ended
	// before seeing it ready.
	ReasonStartUnconfirmed Reason = "start_unconfirmed"
	// ReasonTokenRotated marks an instance whose component token was signed
	// with a token secret rotated since (state.Record.TokenGeneration below
	// the state's): it is replaced so that apply hands it a new token.
	ReasonTokenRotated Reason = "token_rotated"
)

// Plan is an ordered change set, and what it was made against.
type Plan struct {
	Pipeline string   `json:"pipeline"`
	Lineage  string   `json:"lineage"`
	Serial   uint64   `json:"serial"`
	Destroy  bool     `json:"destroy,omitempty"`
	Targets  []string `json:"targets,omitempty"`
	// Changes in execution order: deletes in reverse topological order first,
	// then everything else in topological order. No-ops are included.
	Changes []*Change `json:"changes"`
	// Drift lists where reality differs from state, found while planning.
	Drift []*Drift `json:"drift,omitempty"`
	// Reality is every object the plan saw, with its fingerprint; a saved
	// plan is stale when any of them changed.
	Reality []Seen `json:"reality"`
	// Foreign objects carry this pipeline's name but another lineage: shown,
	// never touched.
	Foreign []Seen `json:"foreign,omitempty"`
	// ControlPlane is the change the control plane needs (nil: none).
	ControlPlane *ControlPlaneChange `json:"control_plane,omitempty"`
	// HostFolders are the bind mounts' host folders that do not exist:
	// apply creates them (0755) before it starts any component.
	HostFolders []config.HostFolder `json:"host_folders,omitempty"`

	// Desired is the full desired pipeline (with sensitive values); nil for
	// a plan read from a file.
	Desired *config.Pipeline `json:"-"`
}

// Change is one planned action on one component.
type Change struct {
	Address  string `json:"address"`
	Action   Action `json:"action"`
	Reason   Reason `json:"reason"`
	Provider string `json:"provider"`
	// PriorProvider runs the object that a replace or delete removes.
	PriorProvider string `json:"prior_provider,omitempty"`
	// ForcedBy lists the attributes that force a replacement.
	ForcedBy []string     `json:"forced_by,omitempty"`
	Attrs    []AttrChange `json:"attributes,omitempty"`
	// SpecHash is the desired spec's hash (empty for deletes).
	SpecHash string `json:"spec_hash,omitempty"`
	// Spec is the desired spec, redacted (empty for deletes).
	Spec json.RawMessage `json:"spec,omitempty"`
	// Handle is the existing object a delete, replace, restart or adopt acts on.
	Handle providers.Handle `json:"handle,omitempty"`
	// Upstreams are the component's dependencies: in the desired graph for
	// creates, in the recorded graph for deletes.
	Upstreams []string `json:"upstreams,omitempty"`
	// Observed is what the plan saw of the existing object.
	Observed *providers.Observed `json:"observed,omitempty"`
	// ClusterChanges are the paths of the existing object's fields its
	// executor's dry run says an update or replace would change
	// (providers.PlanChecker); paths only, never values.
	ClusterChanges []string `json:"cluster_changes,omitempty"`
}

// AttrChange is one attribute's old and new value, rendered as text.
type AttrChange struct {
	Path   string `json:"path"`
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
	HasOld bool   `json:"has_old"`
	HasNew bool   `json:"has_new"`
	Forces bool   `json:"forces_replacement,omitempty"`
	// Sensitive values are rendered as config.RedactedValue.
	Sensitive bool `json:"sensitive,omitempty"`
	// Unknown new values are known only after apply.
	Unknown bool `json:"unknown,omitempty"`
}

// Drift is a difference between state and reality.
type Drift struct {
	Address string `json:"address"`
	Reason  Reason `json:"reason"`
	Detail  string `json:"detail"`
}

// Seen is one object the plan observed.
type Seen struct {
	Address     string `json:"address"`
	Provider    string `json:"provider"`
	Exists      bool   `json:"exists"`
	Running     bool   `json:"running"`
	Fingerprint string `json:"fingerprint,omitempty"`
	InState     bool   `json:"in_state"`
	Lineage     string `json:"lineage,omitempty"`
}

// Options select what to plan.
type Options struct {
	Destroy bool
	Targets []string
	Replace []string
	// NoRefresh skips asking the executors (plan -refresh=false): state is
	// taken as the truth.
	NoRefresh bool
}

// Input is what a plan is made from.
type Input struct {
	Desired   *config.Pipeline // nil: plan from state alone (destroy)
	Meta      state.Meta
	Records   []*state.Record
	Providers *providers.Registry
	Options   Options
	// ControlPlane is the control plane as observed; nil: not planned.
	ControlPlane *ControlPlaneSeen
	// SpecKey keys the spec hashes of components with sensitive values
	// (config.Component.SpecHash); it must be set when Desired has any.
	SpecKey *config.SpecKey
	// State is the state's Identity (state.Store.Identity), "" for none.
	State string
}

// HasChanges reports whether applying the plan would do anything.
func (p *Plan) HasChanges() bool {
	if p.ControlPlane != nil {
		return true
	}
	for _, c := range p.Changes {
		if c.Action != NoOp {
			return true
		}
	}
	return false
}

// Counts returns how many changes of each action the plan has.
func (p *Plan) Counts() map[Action]int {
	out := map[Action]int{}
	for _, c := range p.Changes {
		out[c.Action]++
	}
	return out
}

// Make builds the plan: it asks the providers what reality looks like
// (Observe), then decides (Decide).
func Make(ctx context.Context, in Input) (*Plan, error) {
	if err := resolveImages(ctx, in); err != nil {
		return nil, err
	}
	r, err := Observe(ctx, in)
	if err != nil {
		return nil, err
	}
	p, err := Decide(in, r)
	if err != nil {
		return nil, err
	}
	if p.HostFolders, err = hostFolders(in, p); err != nil {
		return nil, err
	}
	return p, nil
}

// filterTargets keeps the changes -target asks for: the targets and what
// they depend on (for destroy: the targets and what depends on them).
func filterTargets(changes []*Change, in Input) []*Change {
	if len(in.Options.Targets) == 0 {
		return changes
	}
	var nodes []string
	ups := map[string][]string{}
	for _, ch := range changes {
		if ch.Action == DeleteOrphan {
			continue
		}
		nodes = append(nodes, ch.Address)
		ups[ch.Address] = ch.Upstreams
	}
	g := graph.New(nodes, func(n string) []string { return ups[n] })
	keep := map[string]bool{}
	for _, t := range in.Options.Targets {
		keep[t] = true
		var more []string
		if in.Options.Destroy {
			more = g.Descendants(t)
		} else {
			more = g.Ancestors(t)
		}
		for _, m := range more {
			keep[m] = true
		}
	}
	var out []*Change
	for _, ch := range changes {
		if keep[ch.Address] && ch.Action != DeleteOrphan {
			out = append(out, ch)
		}
	}
	return out
}

// order puts deletes (orphans first, then recorded ones in reverse
// topological order of the recorded graph) before every other change in
// topological order of the desired graph.
func order(changes []*Change) ([]*Change, error) {
	var orphans, deletes, rest []*Change
	for _, ch := range changes {
		switch ch.Action {
		case DeleteOrphan:
			orphans = append(orphans, ch)
		case Delete:
			deletes = append(deletes, ch)
		default:
			rest = append(rest, ch)
		}
	}
	sortByGraph := func(list []*Change, reverse bool) error {
		idx := map[string]*Change{}
		var nodes []string
		for _, ch := range list {
			idx[ch.Address] = ch
			nodes = append(nodes, ch.Address)
		}
		g := graph.New(nodes, func(n string) []string { return idx[n].Upstreams })
		var ord []string
		var err error
		if reverse {
			ord, err = g.Reverse()
		} else {
			ord, err = g.Order()
		}
		if err != nil {
			return err
		}
		for i, a := range ord {
			list[i] = idx[a]
		}
		return nil
	}
	if err := sortByGraph(deletes, true); err != nil {
		return nil, fmt.Errorf("order deletes: %w", err)
	}
	if err := sortByGraph(rest, false); err != nil {
		return nil, fmt.Errorf("order changes: %w", err)
	}
	return slices.Concat(orphans, deletes, rest), nil
}

func specUpstreams(spec json.RawMessage) []string {
	if len(spec) == 0 {
		return nil
	}
	var c config.Component
	if json.Unmarshal(spec, &c) != nil {
		return nil
	}
	return c.Upstreams()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// String is the plan's compact text form, one line per change, for tests
// and logs: "[3] -/+ processor.ttp (replace: spec_changed; forced by env.A)".
func (p *Plan) String() string {
	var b strings.Builder
	for i, ch := range p.Changes {
		fmt.Fprintf(&b, "[%d] %s %s (%s: %s", i+1, ch.Action.Symbol(), ch.Address, ch.Action, ch.Reason)
		if len(ch.ForcedBy) > 0 {
			fmt.Fprintf(&b, "; forced by %s", strings.Join(ch.ForcedBy, ", "))
		}
		b.WriteString(")\n")
	}
	if c := p.ControlPlane; c != nil {
		fmt.Fprintf(&b, "[%d] %s control_plane (%s: %s)\n", len(p.Changes)+1, controlPlaneSymbol(c), c.Action, c.Reason)
	}
	return b.String()
}

// StartsComponents says whether p starts anything (and so needs a control
// plane first).
func (p *Plan) StartsComponents() bool {
	for _, ch := range p.Changes {
		switch ch.Action {
		case Create, Replace, Restart, Adopt:
			return true
		}
	}
	return false
}
