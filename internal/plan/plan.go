package plan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

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
}

// HasChanges reports whether applying the plan would do anything.
func (p *Plan) HasChanges() bool {
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

// Make builds the plan.
func Make(ctx context.Context, in Input) (*Plan, error) {
	p := &Plan{Pipeline: in.Meta.Pipeline, Lineage: in.Meta.Lineage, Serial: in.Meta.Serial, Destroy: in.Options.Destroy, Desired: in.Desired}
	if in.Desired != nil {
		p.Pipeline = in.Desired.Name
	}
	p.Targets = append([]string(nil), in.Options.Targets...)
	sort.Strings(p.Targets)

	records := map[string]*state.Record{}
	for _, r := range in.Records {
		records[r.Address] = r
	}
	observed, listed, err := observeAll(ctx, in)
	if err != nil {
		return nil, err
	}

	// Objects state knows, by fingerprint, to tell them from unrecorded ones.
	known := map[string]bool{}
	for addr, o := range observed {
		p.Reality = append(p.Reality, Seen{Address: addr, Provider: records[addr].Provider, Exists: o.Exists, Running: o.Running, Fingerprint: o.Fingerprint, InState: true, Lineage: o.Lineage})
		if o.Exists {
			known[records[addr].Provider+"|"+o.Fingerprint] = true
		}
	}
	var unrecorded []listedObject
	for _, lo := range listed {
		if known[lo.provider+"|"+lo.obs.Fingerprint] {
			continue
		}
		seen := Seen{Address: lo.obs.Address, Provider: lo.provider, Exists: true, Running: lo.obs.Running, Fingerprint: lo.obs.Fingerprint, Lineage: lo.obs.Lineage}
		if lo.obs.Lineage != "" && in.Meta.Lineage != "" && lo.obs.Lineage != in.Meta.Lineage {
			p.Foreign = append(p.Foreign, seen)
			continue
		}
		p.Reality = append(p.Reality, seen)
		unrecorded = append(unrecorded, lo)
	}

	var changes []*Change
	replace := map[string]bool{}
	for _, a := range in.Options.Replace {
		replace[a] = true
	}
	desired := map[string]*config.Component{}
	if in.Desired != nil && !in.Options.Destroy {
		for _, c := range in.Desired.Components {
			desired[c.Address()] = c
		}
	}
	adopted := map[int]bool{}
	for _, addr := range sortedKeys(desired) {
		c := desired[addr]
		ch := planComponent(c, records[addr], observed[addr], replace[addr], in.Options.NoRefresh, in.Meta.TokenGeneration)
		if ch.Action == Create {
			// An unrecorded object that is this very component, running:
			// adopt it rather than start a twin. State may still name an
			// earlier object that is gone: an apply that replaced it was
			// killed between the new start and its state write.
			for i, lo := range unrecorded {
				if !adopted[i] && lo.obs.Address == addr && lo.provider == c.Executor && lo.obs.Running && lo.obs.SpecHash == ch.SpecHash {
					adopted[i] = true
					ch.Action, ch.Reason, ch.Handle = Adopt, ReasonAdoptUnrecorded, lo.obs.Handle
					o := lo.obs
					ch.Observed = &o
					break
				}
			}
		}
		if d := driftOf(ch); d != nil {
			p.Drift = append(p.Drift, d)
		}
		changes = append(changes, ch)
	}
	for _, addr := range sortedKeys(records) {
		if _, ok := desired[addr]; ok {
			continue
		}
		r := records[addr]
		reason := ReasonNotInConfig
		if in.Options.Destroy {
			reason = ReasonDestroy
		}
		ch := &Change{Address: addr, Action: Delete, Reason: reason, PriorProvider: r.Provider, Provider: r.Provider, Handle: r.Handle, Upstreams: specUpstreams(r.Spec)}
		if o, ok := observed[addr]; ok {
			oc := *o
			ch.Observed = &oc
		}
		ch.Attrs = diffAttrs(r.Spec, nil, nil)
		changes = append(changes, ch)
	}
	for i, lo := range unrecorded {
		if adopted[i] {
			continue
		}
		o := lo.obs
		changes = append(changes, &Change{Address: lo.obs.Address, Action: DeleteOrphan, Reason: ReasonOrphan, Provider: lo.provider, PriorProvider: lo.provider, Handle: lo.obs.Handle, Observed: &o})
		p.Drift = append(p.Drift, &Drift{Address: lo.obs.Address, Reason: ReasonOrphan, Detail: fmt.Sprintf("a %s object of this pipeline that state does not record (%s)", lo.provider, lo.obs.Fingerprint)})
	}

	changes = filterTargets(changes, in, records)
	ordered, err := order(changes, in.Desired)
	if err != nil {
		return nil, err
	}
	p.Changes = ordered
	sort.Slice(p.Reality, func(i, j int) bool {
		if p.Reality[i].Address != p.Reality[j].Address {
			return p.Reality[i].Address < p.Reality[j].Address
		}
		return p.Reality[i].Fingerprint < p.Reality[j].Fingerprint
	})
	return p, nil
}

// tokenGen is the state's token-secret generation (state.Meta).
func planComponent(c *config.Component, rec *state.Record, obs *providers.Observed, replace, noRefresh bool, tokenGen uint64) *Change {
	hash, spec := hashAndSpec(c)
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
	if rec.SpecHash != ch.SpecHash {
		ch.Attrs = diffAttrs(rec.Spec, ch.Spec, sensitiveKeys(c))
		if ownRestartsAndChecks[c.Executor] {
			for i := range ch.Attrs {
				if top := topAttr(ch.Attrs[i].Path); top == "health" || top == "restart" {
					ch.Attrs[i].Forces = true
				}
			}
		}
		if !hasVisibleChange(ch.Attrs) {
			for _, k := range sensitiveKeys(c) {
				ch.Attrs = append(ch.Attrs, AttrChange{Path: "env." + k, Old: config.RedactedValue, New: config.RedactedValue, HasOld: true, HasNew: true, Sensitive: true, Forces: true})
			}
		}
	}
	for _, a := range ch.Attrs {
		if a.Forces {
			ch.ForcedBy = append(ch.ForcedBy, a.Path)
		}
	}
	switch {
	case replace:
		ch.Action, ch.Reason = Replace, ReasonReplaceByRequest
	case !noRefresh && obs != nil && !obs.Exists:
		ch.Action, ch.Reason, ch.Handle = Create, ReasonDeletedOutside, nil
	case rec.Provider != c.Executor:
		ch.Action, ch.Reason = Replace, ReasonExecutorChanged
	case !noRefresh && obs != nil && obs.SpecHash != "" && obs.SpecHash != objectHash(rec):
		ch.Action, ch.Reason = Replace, ReasonChangedOutside
	case len(ch.ForcedBy) > 0:
		ch.Action, ch.Reason = Replace, ReasonSpecChanged
	case rec.Status == state.StatusFailed:
		ch.Action, ch.Reason = Replace, ReasonTainted
	case rec.TokenGeneration > 0 && rec.TokenGeneration < tokenGen:
		// Its token is refused since `flowctl tokens rotate`; 0: given none.
		ch.Action, ch.Reason = Replace, ReasonTokenRotated
	case rec.Status == state.StatusCreating && !noRefresh && obs != nil && obs.Running && rec.SpecHash == ch.SpecHash:
		// The last apply started it but stopped before seeing it ready:
		// take it as it is once it proves ready.
		ch.Action, ch.Reason = Adopt, ReasonStartUnconfirmed
	case rec.SpecHash != ch.SpecHash:
		ch.Action, ch.Reason = Update, ReasonSpecChanged
	case !noRefresh && obs != nil && !obs.Running:
		ch.Action, ch.Reason = Restart, ReasonExited
	default:
		ch.Action, ch.Reason = NoOp, ReasonUpToDate
	}
	return ch
}

// hashAndSpec returns c.SpecHash() and c's canonical JSON with sensitive
// values redacted, encoding c once: without sensitive values the redacted
// spec is the canonical JSON itself, which the hash is taken of.
func hashAndSpec(c *config.Component) (string, json.RawMessage) {
	canonical := c.CanonicalJSON()
	sum := sha256.Sum256(canonical)
	if c.HasSensitive() {
		return hex.EncodeToString(sum[:]), c.Redacted().CanonicalJSON()
	}
	return hex.EncodeToString(sum[:]), canonical
}

func objectHash(r *state.Record) string {
	if r.ObjectSpecHash != "" {
		return r.ObjectSpecHash
	}
	return r.SpecHash
}

func driftOf(ch *Change) *Drift {
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

type listedObject struct {
	provider string
	obs      providers.Observed
}

// observeAll asks each record's provider about its object, and every
// provider in use for the objects it holds of this pipeline.
func observeAll(ctx context.Context, in Input) (map[string]*providers.Observed, []listedObject, error) {
	observed := map[string]*providers.Observed{}
	if in.Options.NoRefresh {
		return observed, nil, nil
	}
	used := map[string]bool{}
	if in.Desired != nil {
		for _, c := range in.Desired.Components {
			used[c.Executor] = true
		}
	}
	for _, r := range in.Records {
		used[r.Provider] = true
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 16)
	)
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for _, r := range in.Records {
		prov, err := in.Providers.Get(r.Provider)
		if err != nil {
			return nil, nil, fmt.Errorf("observe %s: %w", r.Address, err)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(r *state.Record) {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := prov.Observe(ctx, r.Handle)
			if err != nil {
				setErr(fmt.Errorf("observe %s with executor %s: %w", r.Address, r.Provider, err))
				return
			}
			o.Address = r.Address
			mu.Lock()
			observed[r.Address] = &o
			mu.Unlock()
		}(r)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, nil, firstErr
	}
	pipeline := in.Meta.Pipeline
	if in.Desired != nil {
		pipeline = in.Desired.Name
	}
	var listed []listedObject
	for _, name := range sortedKeys(used) {
		prov, err := in.Providers.Get(name)
		if err != nil {
			return nil, nil, err
		}
		objs, err := prov.List(ctx, pipeline)
		if err != nil {
			return nil, nil, fmt.Errorf("list objects of executor %s: %w", name, err)
		}
		for _, o := range objs {
			listed = append(listed, listedObject{provider: name, obs: o})
		}
	}
	sort.SliceStable(listed, func(i, j int) bool {
		if listed[i].obs.Address != listed[j].obs.Address {
			return listed[i].obs.Address < listed[j].obs.Address
		}
		return listed[i].obs.Fingerprint < listed[j].obs.Fingerprint
	})
	return observed, listed, nil
}

// filterTargets keeps the changes -target asks for: the targets and what
// they depend on (for destroy: the targets and what depends on them).
func filterTargets(changes []*Change, in Input, records map[string]*state.Record) []*Change {
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
func order(changes []*Change, desired *config.Pipeline) ([]*Change, error) {
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
	return b.String()
}
