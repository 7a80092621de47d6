// Package apply executes a change set through the providers: deletes in
// reverse dependency order, then creates, replaces, restarts, updates and
// adoptions in dependency order, in parallel where the DAG allows, each
// component starting only once its inputs are ready. State is written right
// after every provider call, so at every instant it names everything that
// exists.
package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/health"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/pkg/contract"
)

// PortAllocator hands out free TCP ports for PORT and HEALTH_PORT.
type PortAllocator func() (int, error)

// Wiring is what an Engine is built from: where state lives, the
// providers, and the control plane's services. It is fixed for the
// engine's life; what differs between runs is in Options.
type Wiring struct {
	Store     *state.Store
	Providers *providers.Registry
	Log       *slog.Logger
	// AllocPort finds free ports; nil means FreePort.
	AllocPort PortAllocator
	// ControlPlane is the endpoint injected as FLOWCTL_ENDPOINT; empty
	// leaves control-plane integration off.
	ControlPlane string
	// Token issues a component token for an instance; nil issues none.
	// TokenGeneration is recorded with each instance given a token (see
	// state.Record.TokenGeneration).
	Token           func(c *config.Component, instanceID string) (string, error)
	TokenGeneration uint64
	// DataPlaneKey returns the public key that verifies data tokens,
	// injected as FLOWCTL_DATA_PLANE_KEY (read at each start: a rotation
	// reaches the next instances); nil injects none.
	DataPlaneKey func() (string, error)
	// Registered, when set, is part of readiness: after its health probe
	// passes, a started instance is ready once Registered returns nil (it
	// waits for the component to register with the control plane, when
	// the component is one that registers). since is when it started.
	Registered func(ctx context.Context, c *config.Component, instanceID string, since time.Time) error
	// Seal, when set, encrypts a component's environment for state when it
	// has sensitive values (state.Record.SealedEnv).
	Seal func(plaintext []byte) (string, error)
}

// Options are one run's settings.
type Options struct {
	// WorkDir is the pipeline file's folder.
	WorkDir string
	// Parallelism bounds concurrent provider calls (default 10).
	Parallelism int
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Annotate, when set, completes each history event before it is
	// recorded (the restart watcher adds the attempt and the delay).
	Annotate func(ev *state.Event)
	// EventAtStart records a start's history event in the transaction
	// that records the new instance, stamped with the time the start
	// began, rather than once it is ready (the restart watcher: `logs -f`
	// then never sees the new instance without its reason). A start that
	// then fails to become ready gets a second event saying so.
	EventAtStart bool
	// ReadyTimeout bounds the wait for readiness (default 2m).
	ReadyTimeout time.Duration
	// ProgressEvery is how often "Still creating..." is printed (default 10s).
	ProgressEvery time.Duration
	// OpID tags history events of this operation.
	OpID string
	// Operation names the operation in history ("apply", "destroy").
	Operation string
	// Events, when set, receives each change's start, progress, end and
	// failure (the -json stream; events.go). It is called from several
	// goroutines at once.
	Events func(Event)
}

// Engine applies plans to one pipeline's state. One engine serves any
// number of runs, concurrent or not: Apply and Restart never change it.
type Engine struct {
	wiring Wiring
	now    func() time.Time
}

// New returns an engine over w.
func New(w Wiring) *Engine {
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{wiring: w, now: time.Now}
}

// withDefaults fills the options a run leaves unset.
func (o Options) withDefaults(destroy bool) Options {
	if o.Parallelism <= 0 {
		o.Parallelism = 10
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
	if o.OpID == "" {
		o.OpID = uuid.NewString()
	}
	if o.Operation == "" {
		o.Operation = "apply"
		if destroy {
			o.Operation = "destroy"
		}
	}
	return o
}

// Outcome of one change.
type Outcome struct {
	Address  string
	Action   plan.Action
	Err      error
	Skipped  string // why it was not started
	Elapsed  time.Duration
	Detail   string
	Canceled bool
	// InstanceID is the instance a start made (create, replace, restart),
	// whether or not it became ready; empty when nothing was started.
	InstanceID string
}

// Result summarises an apply.
type Result struct {
	Outcomes                                                []Outcome
	Added, Changed, Destroyed, Replaced, Restarted, Adopted int
}

// Failed lists the outcomes that failed or were skipped.
func (r *Result) Failed() []Outcome {
	var out []Outcome
	for _, o := range r.Outcomes {
		if o.Err != nil || o.Skipped != "" {
			out = append(out, o)
		}
	}
	return out
}

// Summary is the closing line.
func (r *Result) Summary(destroy bool) string {
	if destroy {
		return fmt.Sprintf("Destroy complete! Components: %d destroyed.", r.Destroyed)
	}
	s := fmt.Sprintf("Apply complete! Components: %d added, %d changed, %d destroyed.", r.Added+r.Replaced, r.Changed+r.Restarted+r.Adopted, r.Destroyed+r.Replaced)
	return s
}

// ErrFailed is wrapped by Apply's error when a component failed.
var ErrFailed = errors.New("apply failed")

// node is one change in flight.
type node struct {
	ch      *plan.Change
	comp    *config.Component // desired (nil for deletes)
	done    chan struct{}
	ok      bool // ready (or deleted)
	outcome Outcome
	// settle is the change's last state write (a started component's
	// status), committed with its history event: one transaction, one
	// fsync, on the path to the dependents' start.
	settle func(tx *state.Tx) error
	// eventWritten: the history event went with the start (EventAtStart);
	// startEvent is that event, amended if the start then fails (one row
	// per change).
	eventWritten bool
	startEvent   *state.Event
}

// Apply executes p. desired holds the full desired components (with
// sensitive values); it may be nil for a plan that only deletes. stop ends
// the walk gently: in-flight steps finish, nothing new starts; cancelling ctx
// aborts in-flight steps too.
func (e *Engine) Apply(ctx context.Context, stop <-chan struct{}, p *plan.Plan, desired *config.Pipeline, opts Options) (*Result, error) {
	opts = opts.withDefaults(p.Destroy)
	var meta state.Meta
	if err := e.wiring.Store.View(func(tx *state.Tx) error { meta = tx.Meta(); return nil }); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	w := &walker{Wiring: e.wiring, Options: opts, now: e.now, meta: meta, pipeline: p.Pipeline, sem: make(chan struct{}, opts.Parallelism), stop: stop, desired: desired, portsGiven: map[int]bool{}}
	return w.walk(ctx, p)
}

// walk runs every change of p: deletes first, then the rest, then the
// tally.
func (w *walker) walk(ctx context.Context, p *plan.Plan) (*Result, error) {
	deletes, rest, err := w.nodes(p)
	if err != nil {
		return nil, err
	}
	if err := w.preflight(ctx, rest); err != nil {
		return nil, err
	}
	if err := config.CreateHostFolders(w.WorkDir, p.HostFolders); err != nil {
		return nil, fmt.Errorf("nothing was changed: %w", err)
	}
	w.runDeletes(ctx, deletes)
	w.runInOrder(ctx, rest)
	res := tally(append(deletes, rest...))
	if failed := res.Failed(); len(failed) > 0 {
		return res, fmt.Errorf("%w: %d of %d changes did not complete", ErrFailed, len(failed), len(res.Outcomes))
	}
	return res, nil
}

// nodes makes a node of every change, deletes apart; every other change
// must be of a component the desired pipeline declares.
func (w *walker) nodes(p *plan.Plan) (deletes, rest []*node, err error) {
	for _, ch := range p.Changes {
		n := &node{ch: ch, done: make(chan struct{}), outcome: Outcome{Address: ch.Address, Action: ch.Action}}
		if ch.Action.IsDelete() {
			deletes = append(deletes, n)
			continue
		}
		if w.desired != nil {
			n.comp = w.desired.Component(ch.Address)
		}
		if n.comp == nil {
			return nil, nil, fmt.Errorf("plan changes %s, which the pipeline does not declare", ch.Address)
		}
		rest = append(rest, n)
	}
	return deletes, rest, nil
}

// runDeletes removes what the deletes name: a component goes once every
// recorded dependent has gone.
func (w *walker) runDeletes(ctx context.Context, deletes []*node) {
	var wg sync.WaitGroup
	for _, n := range deletes {
		var waitFor []*node
		for _, m := range deletes {
			if m != n && m.ch.Action == plan.Delete && n.ch.Action == plan.Delete && slices.Contains(m.ch.Upstreams, n.ch.Address) {
				waitFor = append(waitFor, m)
			}
		}
		wg.Go(func() {
			defer close(n.done)
			for _, m := range waitFor {
				<-m.done
			}
			w.run(ctx, n)
		})
	}
	wg.Wait()
}

// runInOrder runs every other change: a component starts once all its
// upstreams are ready, and not at all when one of them is not.
func (w *walker) runInOrder(ctx context.Context, rest []*node) {
	byAddr := map[string]*node{}
	for _, n := range rest {
		byAddr[n.ch.Address] = n
	}
	var wg sync.WaitGroup
	for _, n := range rest {
		var waitFor []*node
		for _, u := range n.ch.Upstreams {
			if m, ok := byAddr[u]; ok {
				waitFor = append(waitFor, m)
			}
		}
		wg.Go(func() {
			defer close(n.done)
			for _, m := range waitFor {
				<-m.done
				if !m.ok {
					n.outcome.Skipped = fmt.Sprintf("not started: its upstream %s %s", m.ch.Address, failureWord(m))
					w.emitSkipped(n)
					return
				}
			}
			w.run(ctx, n)
		})
	}
	wg.Wait()
}

// tally gathers the outcomes, in the plan's order, and counts what was
// done by action.
func tally(nodes []*node) *Result {
	res := &Result{}
	for _, n := range nodes {
		res.Outcomes = append(res.Outcomes, n.outcome)
		if !n.ok {
			continue
		}
		switch n.ch.Action {
		case plan.Create:
			res.Added++
		case plan.Update:
			res.Changed++
		case plan.Replace:
			res.Replaced++
		case plan.Restart:
			res.Restarted++
		case plan.Adopt:
			res.Adopted++
		case plan.Delete, plan.DeleteOrphan:
			res.Destroyed++
		}
	}
	return res
}

// preflight asks each provider that can (providers.Preflighter) whether the
// components this apply starts on it can start, before anything changes.
func (w *walker) preflight(ctx context.Context, nodes []*node) error {
	byProvider := map[string][]*config.Component{}
	for _, n := range nodes {
		switch n.ch.Action {
		case plan.Create, plan.Replace, plan.Restart:
			byProvider[n.comp.Executor] = append(byProvider[n.comp.Executor], n.comp)
		}
	}
	names := make([]string, 0, len(byProvider))
	for name := range byProvider {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		prov, err := w.Providers.Get(name)
		if err != nil {
			return err
		}
		if pf, ok := prov.(providers.Preflighter); ok {
			if err := pf.Preflight(ctx, byProvider[name]); err != nil {
				return fmt.Errorf("nothing was changed: %w", err)
			}
		}
	}
	return nil
}

func failureWord(m *node) string {
	switch {
	case m.outcome.Skipped != "":
		return "was not started"
	case m.outcome.Canceled:
		return "was interrupted"
	}
	return "failed"
}

type walker struct {
	Wiring
	Options
	now      func() time.Time
	mu       sync.Mutex // serialises writes to Out
	meta     state.Meta
	pipeline string
	sem      chan struct{}
	stop     <-chan struct{}
	desired  *config.Pipeline

	portsMu    sync.Mutex
	portsGiven map[int]bool // ports this apply allocated

	recsMu sync.Mutex
	recs   map[string]*state.Record // see records
	held   map[int][]string         // the components each port of recs is recorded for
}

func (w *walker) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *walker) run(ctx context.Context, n *node) {
	if n.ch.Action == plan.NoOp {
		n.ok = true
		w.rehash(n)
		return
	}
	w.sem <- struct{}{}
	if w.stopped() || ctx.Err() != nil {
		<-w.sem
		n.outcome.Skipped = "not started: the operation was interrupted"
		n.outcome.Canceled = true
		w.emitSkipped(n)
		return
	}
	start := w.now()
	verb := progressVerb(n.ch.Action)
	w.printf("%s: %s...\n", n.ch.Address, verb.ing)
	w.emit(changeEvent(EventChangeStart, n))
	tick := time.NewTicker(w.ProgressEvery)
	finished := make(chan struct{})
	go func() {
		for {
			select {
			case <-tick.C:
				w.printf("%s: Still %s... [%s elapsed]\n", n.ch.Address, strings.ToLower(verb.ing), w.now().Sub(start).Round(time.Second))
				ev := changeEvent(EventChangeProgress, n)
				ev.ElapsedMS = w.now().Sub(start).Milliseconds()
				w.emit(ev)
			case <-finished:
				return
			}
		}
	}()
	detail, err := w.execute(ctx, n)
	// The slot is given back once the change is done, before its state
	// write (record): that write waits for the file, and the changes
	// waiting for it commit together.
	<-w.sem
	close(finished)
	tick.Stop()
	n.outcome.Elapsed = w.now().Sub(start)
	n.outcome.Detail = detail
	if rerr := w.record(n, err); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		n.outcome.Err = err
		n.outcome.Canceled = ctx.Err() != nil
		w.printf("%s: %s failed after %s: %v\n", n.ch.Address, verb.noun, round(n.outcome.Elapsed), err)
		ev := changeEvent(EventChangeError, n)
		ev.ElapsedMS, ev.Message = n.outcome.Elapsed.Milliseconds(), err.Error()
		w.emit(ev)
		return
	}
	n.ok = true
	suffix := ""
	if detail != "" {
		suffix = " [" + detail + "]"
	}
	w.printf("%s: %s complete after %s%s\n", n.ch.Address, verb.noun, round(n.outcome.Elapsed), suffix)
	ev := changeEvent(EventChangeComplete, n)
	ev.ElapsedMS, ev.Detail = n.outcome.Elapsed.Milliseconds(), detail
	w.emit(ev)
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

type verbs struct{ ing, noun string }

func progressVerb(a plan.Action) verbs {
	switch a {
	case plan.Create:
		return verbs{"Creating", "Creation"}
	case plan.Update:
		return verbs{"Modifying", "Modifications"}
	case plan.Replace:
		return verbs{"Replacing", "Replacement"}
	case plan.Restart:
		return verbs{"Restarting", "Restart"}
	case plan.Adopt:
		return verbs{"Adopting", "Adoption"}
	}
	return verbs{"Destroying", "Destruction"}
}

func (w *walker) printf(format string, args ...any) {
	if w.Out == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.Out, format, args...)
}

// record commits the change's last state write, if any, and its history
// event. Like every write of the walker it goes through Store.Batch, so the
// components of a level share commits: the functions passed touch nothing
// but the transaction, or nothing that repeating them changes.
// event is the history event of n's change, annotated.
func (w *walker) event(n *node) *state.Event {
	ev := &state.Event{Operation: w.Operation, OpID: w.OpID, Address: n.ch.Address, Action: string(n.ch.Action), Reason: string(n.ch.Reason), Result: "ok", Detail: n.outcome.Detail}
	if w.Annotate != nil {
		w.Annotate(ev)
	}
	return ev
}

func (w *walker) record(n *node, err error) error {
	ev := w.event(n)
	if err != nil {
		ev.Result, ev.Detail = "failed", firstLine(err.Error())
		if ctx := n.outcome.Canceled; ctx {
			ev.Result = "interrupted"
		}
	}
	serr := w.Store.Batch(func(tx *state.Tx) error {
		if n.settle != nil {
			if err := n.settle(tx); err != nil {
				return err
			}
		}
		if n.eventWritten && err == nil {
			return nil
		}
		if n.eventWritten && n.startEvent != nil {
			amended := *n.startEvent
			amended.Result, amended.Detail = ev.Result, ev.Detail
			return tx.AmendHistory(&amended)
		}
		if rec, _ := tx.Component(ev.Address); rec != nil && (n.ch.Action == plan.Create || n.ch.Action == plan.Replace || n.ch.Action == plan.Restart) {
			ev.StartedAt = rec.StartedAt
		}
		return tx.AppendHistory(ev)
	})
	if serr != nil {
		w.Log.Error("record history", "address", n.ch.Address, "err", serr)
		if n.settle != nil {
			return fmt.Errorf("record status: %w", serr)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// execute performs one change and returns a short detail for the progress
// line.
func (w *walker) execute(ctx context.Context, n *node) (string, error) {
	ch := n.ch
	switch ch.Action {
	case plan.Delete, plan.DeleteOrphan:
		if err := w.stopObject(ctx, ch.PriorProvider, ch.Handle, w.graceFor(ch), false); err != nil {
			return "", err
		}
		if ch.Action == plan.Delete {
			// Forgotten in the write that records the change's history
			// (record), not in one of its own: a destroy of many
			// components is bound by its state writes. Killed before that
			// write, the state still names an instance that has ended,
			// which the next plan sees.
			n.settle = func(tx *state.Tx) error { return tx.DeleteComponent(ch.Address) }
		}
		return "", nil
	case plan.Update:
		return "", w.Store.Batch(func(tx *state.Tx) error {
			rec, err := tx.Component(ch.Address)
			if err != nil || rec == nil {
				return fmt.Errorf("update %s: not in state", ch.Address)
			}
			if rec.ObjectSpecHash == "" {
				rec.ObjectSpecHash = rec.SpecHash
			}
			rec.SpecHash, rec.Spec = ch.SpecHash, ch.Spec
			return tx.PutComponent(rec)
		})
	case plan.Adopt:
		return w.adopt(ctx, n)
	case plan.Replace, plan.Restart:
		if len(ch.Handle) > 0 {
			// The restart watcher must not take the stop for a failure of
			// the instance it follows.
			undo, err := w.markReplacing(ch)
			if err != nil {
				return "", err
			}
			if err := w.stopObject(ctx, ch.PriorProvider, ch.Handle, n.comp.StopTimeout.D(), ch.PriorProvider == n.comp.Executor); err != nil {
				undo()
				return "", err
			}
		}
		detail, err := w.start(ctx, n)
		if err != nil && ch.Action == plan.Replace {
			w.recordFailedReplace(n, err)
		}
		return detail, err
	case plan.Create:
		return w.start(ctx, n)
	}
	return "", fmt.Errorf("unknown action %q", ch.Action)
}

// markReplacing records that ch's instance is being replaced: an apply
// is starting its successor (state.StatusCreating).
// Only a replace is marked (a restart starts the same spec again); undo
// puts the recorded status back when the old instance could not be
// stopped.
func (w *walker) markReplacing(ch *plan.Change) (undo func(), err error) {
	undo = func() {}
	if ch.Action != plan.Replace {
		return undo, nil
	}
	var status, reason, instance string
	err = w.Store.Batch(func(tx *state.Tx) error {
		rec, err := tx.Component(ch.Address)
		if err != nil || rec == nil {
			return err
		}
		status, reason, instance = rec.Status, rec.StatusReason, rec.InstanceID
		rec.Status, rec.StatusReason = state.StatusCreating, "being replaced"
		return tx.PutComponent(rec)
	})
	if err != nil {
		return undo, fmt.Errorf("record %s in state: %w", ch.Address, err)
	}
	return func() {
		_ = w.Store.Batch(func(tx *state.Tx) error {
			rec, err := tx.Component(ch.Address)
			if err != nil || rec == nil || rec.InstanceID != instance {
				return err
			}
			rec.Status, rec.StatusReason = status, reason
			return tx.PutComponent(rec)
		})
	}, nil
}

// recordFailedReplace writes down a replacement whose new instance never
// started (its executor refused it): the old instance is gone, so the
// record names no object, the new spec and instance, and the failure.
// There is no rollback: nothing restarts the old spec, and the next plan
// creates the component again.
func (w *walker) recordFailedReplace(n *node, cause error) {
	addr := n.ch.Address
	err := w.Store.Batch(func(tx *state.Tx) error {
		rec, err := tx.Component(addr)
		if err != nil || rec == nil || n.outcome.InstanceID != "" {
			return err // the new instance is recorded: finishStart wrote its outcome
		}
		rec.Handle, rec.InstanceID = nil, ""
		rec.SpecHash, rec.ObjectSpecHash, rec.Spec = n.ch.SpecHash, n.ch.SpecHash, n.ch.Spec
		rec.Provider = n.comp.Executor
		rec.Status, rec.StatusReason = state.StatusFailed, "replace failed: "+firstLine(cause.Error())
		return tx.PutComponent(rec)
	})
	if err != nil {
		w.Log.Error("record a failed replacement", "address", addr, "err", err)
	}
}

func fingerprintOf(o *providers.Observed) string {
	if o == nil {
		return ""
	}
	return o.Fingerprint
}

func (w *walker) graceFor(ch *plan.Change) time.Duration {
	if len(ch.Spec) > 0 {
		var c config.Component
		if json.Unmarshal(ch.Spec, &c) == nil && c.StopTimeout > 0 {
			return c.StopTimeout.D()
		}
	}
	if w.desired != nil {
		if c := w.desired.Component(ch.Address); c != nil {
			return c.StopTimeout.D()
		}
	}
	var rec *state.Record
	_ = w.Store.View(func(tx *state.Tx) error { var err error; rec, err = tx.Component(ch.Address); return err })
	if rec != nil && len(rec.Spec) > 0 {
		var c config.Component
		if json.Unmarshal(rec.Spec, &c) == nil && c.StopTimeout > 0 {
			return c.StopTimeout.D()
		}
	}
	return config.DefaultStopTimeout.D()
}

// stopObject stops the object h names; replaced says that a new instance
// on the same provider follows at once, which keeps what the pipeline's
// objects share there (providers.ReplaceStopper).
func (w *walker) stopObject(ctx context.Context, provName string, h providers.Handle, grace time.Duration, replaced bool) error {
	if len(h) == 0 {
		return nil
	}
	prov, err := w.Providers.Get(provName)
	if err != nil {
		return err
	}
	stop := prov.Stop
	if rs, ok := prov.(providers.ReplaceStopper); ok && replaced {
		stop = rs.StopForReplace
	}
	if err := stop(ctx, h, grace); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// start creates one instance: ports, env, token, provider call, state
// record (before readiness), readiness wait, final status.
func (w *walker) start(ctx context.Context, n *node) (string, error) {
	c := n.comp
	prov, err := w.Providers.Get(c.Executor)
	if err != nil {
		return "", err
	}
	recs, err := w.records(c.Address())
	if err != nil {
		return "", err
	}
	prior := recs.own
	ports, err := w.ports(c, recs)
	if err != nil {
		return "", err
	}
	instanceID := uuid.NewString()
	resolve := selfResolver(w.pipeline, prov, c, ports, w.resolver(recs))
	inj := injected{pipeline: w.pipeline, lineage: w.meta.Lineage, instanceID: instanceID, specHash: n.ch.SpecHash, endpoint: w.ControlPlane, heartbeat: contract.DefaultHeartbeatInterval.String(), ports: ports}
	if w.DataPlaneKey != nil {
		if inj.dataKey, err = w.DataPlaneKey(); err != nil {
			return "", fmt.Errorf("data-plane key: %w", err)
		}
	}
	if w.Token != nil {
		tok, err := w.Token(c, instanceID)
		if err != nil {
			return "", fmt.Errorf("issue token: %w", err)
		}
		inj.token = tok
	}
	spec := providers.ComponentSpec{
		Pipeline: w.pipeline, Lineage: w.meta.Lineage, InstanceID: instanceID, SpecHash: n.ch.SpecHash,
		Component: c, Env: buildEnv(prov, c, inj, resolve), Ports: ports, WorkDir: w.WorkDir,
	}
	began := w.now().UTC()
	var sealed string
	if w.Seal != nil && c.HasSensitive() {
		b, err := json.Marshal(c.Env)
		if err == nil {
			sealed, err = w.Seal(b)
		}
		if err != nil {
			return "", fmt.Errorf("seal the environment of %s: %w", c.Address(), err)
		}
	}
	h, err := prov.Start(ctx, spec)
	if err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	rec := &state.Record{
		Address: c.Address(), Kind: string(c.Kind), ID: c.ID, Provider: c.Executor,
		SpecHash: n.ch.SpecHash, ObjectSpecHash: n.ch.SpecHash, Spec: n.ch.Spec, Handle: h,
		InstanceID: instanceID, Ports: ports, Status: state.StatusCreating, StartedAt: began,
	}
	if inj.token != "" {
		rec.TokenGeneration = w.TokenGeneration
	}
	if prior != nil {
		rec.RestartCount = prior.RestartCount
		rec.CreatedAt = prior.CreatedAt
	}
	if n.ch.Action == plan.Restart {
		rec.RestartCount++
	}
	rec.WorkDir, rec.SealedEnv = w.WorkDir, sealed
	if err := w.Store.Batch(func(tx *state.Tx) error {
		if err := tx.PutComponent(rec); err != nil {
			return err
		}
		if !w.EventAtStart {
			return nil
		}
		ev := w.event(n)
		ev.Time = began
		if err := tx.AppendHistory(ev); err != nil {
			return err
		}
		n.eventWritten, n.startEvent = true, ev
		return nil
	}); err != nil {
		// The object exists but state does not say so: stop it rather than
		// leave an orphan behind.
		_ = prov.Stop(context.WithoutCancel(ctx), h, c.StopTimeout.D())
		return "", fmt.Errorf("record %s in state: %w", c.Address(), err)
	}
	w.remember(rec)
	n.outcome.InstanceID = instanceID
	obs, _ := prov.Observe(ctx, h)
	return obs.Fingerprint, w.finishStart(ctx, n, prov, h, ports, instanceID)
}

// finishStart waits for readiness and has the outcome recorded in state
// (see node.settle); a failure carries the component's last log lines.
func (w *walker) finishStart(ctx context.Context, n *node, prov providers.Provider, h providers.Handle, ports map[string]int, instanceID string) error {
	c := n.comp
	since := w.now()
	readyErr := w.waitReady(ctx, prov, h, c, ports)
	if readyErr == nil && w.Registered != nil {
		rctx, cancel := context.WithTimeout(ctx, w.readyTimeout(c))
		readyErr = w.Registered(rctx, c, instanceID, since)
		cancel()
	}
	status, reason := state.StatusRunning, ""
	if readyErr != nil {
		status, reason = state.StatusFailed, firstLine(readyErr.Error())
	}
	n.settle = func(tx *state.Tx) error {
		cur, err := tx.Component(c.Address())
		if err != nil || cur == nil || cur.InstanceID != instanceID {
			return err
		}
		cur.Status, cur.StatusReason = status, reason
		return tx.PutComponent(cur)
	}
	if readyErr != nil {
		return fmt.Errorf("%w%s", readyErr, w.lastLogs(ctx, prov, h))
	}
	return nil
}

// adopt records an object that runs but that state does not (fully) know,
// then waits for it to be ready like a fresh start.
func (w *walker) adopt(ctx context.Context, n *node) (string, error) {
	ch, c := n.ch, n.comp
	prov, err := w.Providers.Get(ch.Provider)
	if err != nil {
		return "", err
	}
	var inst string
	ports := map[string]int{}
	if ch.Observed != nil {
		inst = ch.Observed.InstanceID
		for k, v := range ch.Observed.Ports {
			ports[k] = v
		}
	}
	var adopted *state.Record
	err = w.Store.Batch(func(tx *state.Tx) error {
		rec, err := tx.Component(ch.Address)
		if err != nil {
			return err
		}
		adopted = rec
		if rec == nil {
			rec = &state.Record{Address: ch.Address, Kind: string(c.Kind), ID: c.ID, StartedAt: w.now().UTC()}
			adopted = rec
		}
		for k, v := range rec.Ports {
			if _, ok := ports[k]; !ok {
				ports[k] = v
			}
		}
		if inst == "" {
			inst = rec.InstanceID
		}
		rec.Provider, rec.SpecHash, rec.ObjectSpecHash, rec.Spec, rec.Handle = ch.Provider, ch.SpecHash, ch.SpecHash, ch.Spec, ch.Handle
		rec.InstanceID, rec.Ports, rec.Status, rec.StatusReason = inst, ports, state.StatusCreating, "adopted"
		return tx.PutComponent(rec)
	})
	if err != nil {
		return "", fmt.Errorf("record %s in state: %w", ch.Address, err)
	}
	w.remember(adopted)
	return fingerprintOf(ch.Observed), w.finishStart(ctx, n, prov, ch.Handle, ports, inst)
}

// records returns every component record, by address, for a start of
// addr: what state held when the first start of this apply asked (after
// its deletes), with what this apply's starts and adoptions recorded since
// (remember), and addr's own record read afresh (serve's restart watcher
// may have moved its restart count). Decoding all N records for each of N
// starts was most of apply's CPU at 1,000 components; copying them, or
// gathering the ports they hold, for each start was O(N²) still. The
// records are shared and must not be changed.
func (w *walker) records(addr string) (recordsView, error) {
	w.recsMu.Lock()
	if w.recs == nil {
		recs := map[string]*state.Record{}
		err := w.Store.View(func(tx *state.Tx) error {
			all, err := tx.Components()
			for _, r := range all {
				recs[r.Address] = r
			}
			return err
		})
		if err != nil {
			w.recsMu.Unlock()
			return recordsView{}, fmt.Errorf("read state: %w", err)
		}
		w.recs, w.held = recs, map[int][]string{}
		for _, r := range recs {
			w.hold(r)
		}
	}
	w.recsMu.Unlock()
	v := recordsView{w: w, addr: addr}
	err := w.Store.View(func(tx *state.Tx) (err error) {
		v.own, err = tx.Component(addr)
		return err
	})
	if err != nil {
		return recordsView{}, fmt.Errorf("read state: %w", err)
	}
	return v, nil
}

// recordsView is what records returns: the records as a start of addr
// sees them.
type recordsView struct {
	w    *walker
	addr string
	own  *state.Record // addr's record, read afresh (nil: none)
}

// get returns the record of a (nil: none).
func (v recordsView) get(a string) *state.Record {
	if a == v.addr {
		return v.own
	}
	v.w.recsMu.Lock()
	defer v.w.recsMu.Unlock()
	return v.w.recs[a]
}

// heldByOthers says whether a component other than addr is recorded with
// port p.
func (w *walker) heldByOthers(p int, addr string) bool {
	w.recsMu.Lock()
	defer w.recsMu.Unlock()
	for _, a := range w.held[p] {
		if a != addr {
			return true
		}
	}
	return false
}

// hold and unhold note r's ports in w.held; the caller holds recsMu.
func (w *walker) hold(r *state.Record) {
	for _, p := range r.Ports {
		if !slices.Contains(w.held[p], r.Address) {
			w.held[p] = append(w.held[p], r.Address)
		}
	}
}

func (w *walker) unhold(r *state.Record) {
	for _, p := range r.Ports {
		w.held[p] = slices.DeleteFunc(w.held[p], func(a string) bool { return a == r.Address })
		if len(w.held[p]) == 0 {
			delete(w.held, p)
		}
	}
}

// remember notes a record this apply wrote, for the next records.
func (w *walker) remember(rec *state.Record) {
	w.recsMu.Lock()
	defer w.recsMu.Unlock()
	if w.recs == nil {
		return
	}
	if old := w.recs[rec.Address]; old != nil {
		w.unhold(old)
	}
	w.recs[rec.Address] = rec
	w.hold(rec)
}

// ports keeps PORT and HEALTH_PORT across replacements and allocates what is
// missing; a value the user set in env or in health wins. An allocated port
// is one no other component holds in state (it may be stopped now and
// start again with it) and that this apply has not handed out already.
func (w *walker) ports(c *config.Component, recs recordsView) (map[string]int, error) {
	prior := recs.own
	out := map[string]int{}
	for _, name := range contract.PortNames() {
		if p := c.FixedPorts[name]; p != 0 {
			out[name] = p
			continue
		}
		if v, ok := c.Env[name]; ok && !v.Deferred {
			if p, err := strconv.Atoi(v.Value); err == nil {
				out[name] = p
				continue
			}
		}
		if name == contract.EnvHealthPort && c.Health != nil && c.Health.Port != 0 {
			out[name] = c.Health.Port
			continue
		}
		if prior != nil && prior.Ports[name] != 0 {
			out[name] = prior.Ports[name]
			continue
		}
		p, err := w.allocPort(c.Address())
		if err != nil {
			return nil, fmt.Errorf("allocate %s: %w", name, err)
		}
		out[name] = p
	}
	return out, nil
}

func (w *walker) allocPort(addr string) (int, error) {
	alloc := w.AllocPort
	if alloc == nil {
		alloc = FreePort
	}
	w.portsMu.Lock()
	defer w.portsMu.Unlock()
	for range 100 {
		p, err := alloc()
		if err != nil {
			return 0, err
		}
		if !w.heldByOthers(p, addr) && !w.portsGiven[p] {
			w.portsGiven[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port found that no other component holds")
}

// resolver resolves ${KIND.ID.ATTR} from what state records now: every
// referenced component is upstream, so it was applied first.
func (w *walker) resolver(recs recordsView) func(config.Ref) string {
	return func(r config.Ref) string {
		rec := recs.get(r.Addr)
		if rec == nil {
			return ""
		}
		switch r.Attr {
		case config.PortAttr:
			return strconv.Itoa(rec.Ports[contract.EnvPort])
		case config.HealthPortAttr:
			return strconv.Itoa(rec.Ports[contract.EnvHealthPort])
		}
		var c *config.Component
		if w.desired != nil {
			c = w.desired.Component(r.Addr)
		}
		prov, err := w.Providers.Get(rec.Provider)
		if c == nil || err != nil {
			return "127.0.0.1:" + strconv.Itoa(rec.Ports[contract.EnvPort])
		}
		return addressOf(prov, w.pipeline, c, rec.Ports[contract.EnvPort])
	}
}

// aliveEvery bounds how often waitReady asks the provider whether a
// component that is not ready yet still runs.
const aliveEvery = 100 * time.Millisecond

// waitReady waits until the component's health probe passes; a component
// with no probe is ready once it is running.
func (w *walker) waitReady(ctx context.Context, prov providers.Provider, h providers.Handle, c *config.Component, ports map[string]int) error {
	ctx, cancel := context.WithTimeout(ctx, w.readyTimeout(c))
	defer cancel()
	// Whether the component still runs is asked after failed checks; at
	// most every aliveEvery, as it costs more than a check.
	var lastAlive time.Time
	alive := func() error {
		now := time.Now()
		if now.Sub(lastAlive) < aliveEvery {
			return nil
		}
		lastAlive = now
		o, err := prov.Observe(ctx, h)
		if err != nil {
			return err
		}
		if !o.Running {
			if o.Detail != "" {
				return errors.New(o.Detail)
			}
			return errors.New("not running")
		}
		return nil
	}
	if sr, ok := prov.(providers.SelfRestarter); c.Health == nil || (ok && sr.RestartsItself()) {
		return w.waitOwnHealth(ctx, prov, h)
	}
	host := "127.0.0.1"
	if hr, ok := prov.(providers.HealthHostResolver); ok {
		hh, err := hr.HealthHost(ctx, h)
		if err != nil {
			return fmt.Errorf("find health address: %w", err)
		}
		host = hh
	}
	probe, err := health.FromConfig(c.Health, host, ports[contract.EnvHealthPort], w.WorkDir, nil)
	if err != nil {
		return fmt.Errorf("health probe: %w", err)
	}
	res, err := health.Wait(ctx, probe, c.Health, alive)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	_ = res
	return nil
}

// waitOwnHealth is readiness for a component without a probe: it is ready
// once running, and, when its executor checks its health itself (a Docker
// image's HEALTHCHECK), once that reports healthy.
func (w *walker) waitOwnHealth(ctx context.Context, prov providers.Provider, h providers.Handle) error {
	step := 50 * time.Millisecond
	for {
		o, err := prov.Observe(ctx, h)
		switch {
		case err != nil:
			return err
		case !o.Running && o.Detail != "":
			return errors.New(o.Detail)
		case !o.Running:
			return errors.New("not running")
		case o.Health == providers.HealthUnhealthy:
			return errors.New("not ready: its own health check reports it unhealthy")
		case o.Health != providers.HealthStarting:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: waiting for its own health check to pass: %w", ctx.Err())
		case <-time.After(step):
		}
		step = min(step*2, 500*time.Millisecond)
	}
}

// lastLogs returns the component's last log lines, indented, for a failure
// message.
func (w *walker) lastLogs(ctx context.Context, prov providers.Provider, h providers.Handle) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	rc, err := prov.Logs(ctx, h, providers.LogOptions{Tail: 10})
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 8<<10))
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return "\n  last log lines:\n    " + strings.ReplaceAll(string(b), "\n", "\n    ")
}
