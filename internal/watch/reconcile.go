package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/graph"
	"github.com/flowctl/flowctl/internal/health"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/pkg/contract"
)

// DefaultPoll is the reconciler's safety-net poll; exits are usually seen
// at once through Options.Wake.
const DefaultPoll = time.Second

// restartReadyTimeout bounds a restarted instance's wait for readiness; a
// start that takes longer counts as a failed attempt.
const restartReadyTimeout = 30 * time.Second

// exitSettle is how soon to look again at an instance whose exit is
// being recorded.
const exitSettle = 50 * time.Millisecond

// gapAfter is the silence between two passes of the loop that counts as
// a gap in its observation (the process was stopped, the machine slept):
// what happened meanwhile nobody watched.
const gapAfter = 10 * DefaultPoll

// A poll waits for another process's run of state writes to end
// (state.Store.Settled): quiet for settleQuiet, at most settleMax.
const (
	settleQuiet = 100 * time.Millisecond
	settleMax   = 3 * time.Second
)

// failureOf describes how an instance that is not running ended: by its
// signal, else its exit code, else the executor's word (a container that
// never started has no exit code to tell).
func failureOf(obs providers.Observed) Failure {
	if obs.Signal != "" {
		return Signaled(obs.Signal)
	}
	if obs.ExitCode != nil {
		return Exited(*obs.ExitCode)
	}
	return NotRunning(obs.Detail)
}

// lockOperation names the watcher's restarts in the operation lock and in
// history.
const lockOperation = "restart"

// Options configure a Reconciler.
type Options struct {
	Store     *state.Store
	Providers *providers.Registry
	// Engine starts the restarts, set up as apply's (control plane
	// endpoint, token issuer, registration wait, sealing). Required.
	Engine *apply.Engine
	// Open decrypts a record's SealedEnv (tokens.Secret.Open); nil: records
	// with a sealed environment cannot be restarted.
	Open func(sealed string) ([]byte, error)
	// Registrations returns the control plane's registrations now (with
	// Alive computed); nil disables the heartbeat watch.
	Registrations func() []controlplane.Registration
	// Wake, when set, is signalled when something may have ended (the
	// process executor's run folder changed, a container died): the
	// reconciler looks at once instead of at the next poll.
	Wake <-chan struct{}
	// Poll is the safety-net poll interval (default DefaultPoll).
	Poll  time.Duration
	Clock Clock
	Rand  Rand
	Log   *slog.Logger
}

// Reconciler is the restart watcher's loop: it keeps every component that
// state says should run running, by the component's restart policy (see
// the package documentation).
type Reconciler struct {
	opts     Options
	trackers map[string]*tracked
	mu       sync.Mutex // guards trackers for Statuses
	// since is when the current stretch of observation began: the loop's
	// first pass, or its first after a gap. Heartbeats missed before
	// since + a grace are not the component's failure, and failures first
	// seen after since began are not counted.
	since time.Time
	// lastPass is when the latest pass ended.
	lastPass time.Time
	// unsaved are the trackers a pass changed, and writes the component
	// records' statuses (with their history rows) it decided on: written
	// together in one transaction before its restarts and at its end
	// (flush). At 1,000 components a transaction each cost serve a seal
	// over every record and made every other process re-check the file.
	unsaved  map[string]*tracked
	statuses []statusWrite
	// due are the restarts a pass found due, run together at its end
	// (restartDue).
	due []due
}

// due is a restart a pass found due.
type due struct {
	rec  *state.Record
	comp *config.Component
	tr   *tracked
}

// restartParallel bounds how many restarts run at once: a hundred
// components killed together come back in a few rounds, not one by one.
const restartParallel = 20

// tracked is the loop's view of one component.
type tracked struct {
	t        *Tracker
	instance string
	liveness *Liveness
	probe    health.Probe
	nextLive time.Time
	hb       time.Time // last heartbeat seen
	// looked is when the loop last looked at the instance (zero: never).
	looked time.Time
}

// NewReconciler returns a reconciler; Run runs it.
func NewReconciler(opts Options) *Reconciler {
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{opts: opts, trackers: map[string]*tracked{}}
}

// Run reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		next := r.reconcile(ctx)
		wait := r.opts.Poll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(r.opts.Clock.Now()), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.opts.Wake:
			// Something ended: look at once.
			t.Stop()
		case <-t.C:
			// A poll lets another process's run of writes (an apply)
			// finish first: each version it writes would be checked anew
			// before this pass's read.
			r.opts.Store.Settled(ctx, settleQuiet, settleMax)
		}
	}
}

// Statuses is the watcher's view of each tracked component, by address.
func (r *Reconciler) Statuses() map[string]Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Status, len(r.trackers))
	for a, tr := range r.trackers {
		out[a] = tr.t.Status()
	}
	return out
}

// reconcile looks at every component once and acts; it returns when it
// next needs to look (the earliest pending restart or liveness check).
func (r *Reconciler) reconcile(ctx context.Context) time.Time {
	now := r.opts.Clock.Now()
	if r.lastPass.IsZero() || now.Sub(r.lastPass) > gapAfter {
		r.since = now
	}
	defer func() { r.lastPass = r.opts.Clock.Now() }()
	var recs []*state.Record
	saved := map[string][]byte{}
	err := r.opts.Store.View(func(tx *state.Tx) error {
		var err error
		recs, err = tx.Components()
		if err != nil {
			return err
		}
		return tx.ForEachData(DataNamespace, func(k string, v []byte) error {
			saved[k] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		r.opts.Log.Warn("restart watcher: read state", "err", err)
		return time.Time{}
	}
	defer r.flush()
	present := map[string]bool{}
	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, rec := range recs {
		present[rec.Address] = true
		if ctx.Err() != nil {
			return next
		}
		soonest(r.one(ctx, rec, saved[rec.Address]))
	}
	r.flush()
	soonest(r.restartDue(ctx))
	r.mu.Lock()
	var gone []string
	for a := range r.trackers {
		if !present[a] {
			gone = append(gone, a)
			delete(r.trackers, a)
		}
	}
	r.mu.Unlock()
	for a := range saved {
		if !present[a] {
			gone = append(gone, a)
		}
	}
	if len(gone) > 0 {
		// Destroyed or forgotten: nothing of them is kept.
		_ = r.opts.Store.Update(func(tx *state.Tx) error {
			for _, a := range gone {
				if err := tx.DeleteData(DataNamespace, a); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return next
}

// one reconciles one component and returns when it next needs a look.
func (r *Reconciler) one(ctx context.Context, rec *state.Record, saved []byte) time.Time {
	// Stopped on purpose, or being started by an apply: not the watcher's.
	// A record without an object: an apply's start failed; it stays as
	// it is until the next apply (no rollback, no retry of what apply
	// could not even start).
	if rec.Status == state.StatusStopped || rec.Status == state.StatusCreating || len(rec.Handle) == 0 {
		return time.Time{}
	}
	comp, err := ComponentOf(rec)
	if err != nil {
		r.opts.Log.Warn("restart watcher: cannot read the component's recorded spec", "component", rec.Address, "err", err)
		return time.Time{}
	}
	tr := r.tracker(rec, saved, PolicyOf(comp.Restart))
	switch tr.t.State().Phase {
	case PhaseCrashloop, PhaseEnded:
		return time.Time{}
	case PhaseBackoff:
		at, _ := tr.t.Pending()
		if r.opts.Clock.Now().Before(at) {
			return at
		}
		r.due = append(r.due, due{rec, comp, tr})
		return time.Time{}
	}
	unwatched := r.unwatched(rec, tr)
	f, next := r.look(ctx, rec, comp, tr)
	tr.looked = r.opts.Clock.Now()
	if f == nil {
		return next
	}
	f.Unwatched = f.Unwatched || unwatched
	d := tr.t.Failed(*f)
	r.save(rec.Address, tr)
	return r.act(ctx, rec, comp, tr, d)
}

// unwatched reports whether this is the loop's first look at the instance
// in the current stretch of observation, at an instance that started
// before it: whatever it finds ended did so while nobody watched. (An
// instance started within startSlack of the loop's start is one the loop
// was there for: an apply starts the control plane, then its components.)
func (r *Reconciler) unwatched(rec *state.Record, tr *tracked) bool {
	if !tr.looked.IsZero() && !tr.looked.Before(r.since) {
		return false
	}
	return rec.StartedAt.Before(r.since.Add(-startSlack))
}

// startSlack: see unwatched.
const startSlack = time.Second

// tracker returns the component's tracker, restored from what was saved
// when the loop first meets it, with pol as its policy. A new instance in
// state (an apply replaced or restarted it) ends any streak, backoff or
// crashloop: a deliberate start.
func (r *Reconciler) tracker(rec *state.Record, saved []byte, pol Policy) *tracked {
	r.mu.Lock()
	tr := r.trackers[rec.Address]
	if tr == nil {
		tr = &tracked{instance: rec.InstanceID}
		if st, err := UnmarshalState(saved); saved != nil && err == nil {
			tr.t = Restore(pol, r.opts.Clock, r.rand(), st)
			if st.Instance != "" && st.Instance != rec.InstanceID {
				tr.t.Reset() // an apply started a new instance meanwhile
			}
		} else {
			tr.t = New(pol, r.opts.Clock, r.rand())
		}
		r.trackers[rec.Address] = tr
	}
	r.mu.Unlock()
	tr.t.SetPolicy(pol)
	if rec.InstanceID != tr.instance {
		tr.instance = rec.InstanceID
		tr.t.Reset()
		tr.liveness, tr.probe, tr.hb = nil, nil, time.Time{}
		r.save(rec.Address, tr)
	}
	return tr
}

// look observes the component's instance and returns how it failed, if
// it did, or when to look again. An executor that restarts its own
// (providers.SelfRestarter) is left to it.
func (r *Reconciler) look(ctx context.Context, rec *state.Record, comp *config.Component, tr *tracked) (*Failure, time.Time) {
	prov, err := r.opts.Providers.Get(rec.Provider)
	if err != nil {
		return nil, time.Time{}
	}
	if sr, ok := prov.(providers.SelfRestarter); ok && sr.RestartsItself() {
		return nil, time.Time{}
	}
	obs, err := prov.Observe(ctx, rec.Handle)
	if err != nil {
		r.opts.Log.Debug("restart watcher: observe", "component", rec.Address, "err", err)
		return nil, time.Time{}
	}
	switch {
	case !obs.Exists:
		f := Gone() // removed behind flowctl's back
		return &f, time.Time{}
	case !obs.Running && obs.ExitPending:
		// The executor is still writing down how it ended (the process
		// executor's shim); its record will wake the loop.
		return nil, r.opts.Clock.Now().Add(exitSettle)
	case !obs.Running:
		f := failureOf(obs)
		return &f, time.Time{}
	}
	return r.checkRunning(ctx, rec, comp, tr, obs)
}

// act carries out the tracker's decision d on a failure; it returns when
// to look again.
func (r *Reconciler) act(ctx context.Context, rec *state.Record, comp *config.Component, tr *tracked, d Decision) time.Time {
	r.record(rec.Address, rec.InstanceID, d)
	if d.Action != ActRestart {
		return time.Time{}
	}
	if !r.opts.Clock.Now().Before(d.At) {
		r.due = append(r.due, due{rec, comp, tr})
		return time.Time{}
	}
	return d.At
}

// record writes down the tracker's decision d about instance of addr: its
// status and reason, and a crash loop's history row.
func (r *Reconciler) record(addr, instance string, d Decision) {
	log := r.opts.Log.With("component", addr)
	switch d.Action {
	case ActRestart:
		log.Info("restart watcher: component failed", "reason", d.Reason, "attempt", d.Attempt, "delay", d.Delay, "counted", !d.Uncounted)
		next := fmt.Sprintf("restart %d in %s", d.Attempt, d.Delay)
		if d.Uncounted {
			next = "restart now"
		}
		r.setStatus(addr, instance, state.StatusFailed, d.Reason+"; "+next, d.ExitCode)
	case ActCrashloop:
		log.Warn("restart watcher: crash loop", "reason", d.Reason, "restarts", d.Attempt)
		// The status and its history row are one write: a reader that
		// sees the crash loop also sees its row.
		r.setStatusAndLog(addr, instance, state.StatusCrashloop, fmt.Sprintf("%s after %d restarts", d.Reason, d.Attempt), d.ExitCode,
			&state.Event{Operation: lockOperation, Address: addr, Action: "crashloop", Reason: d.Reason, Result: "failed", Attempt: d.Attempt})
	default:
		// The policy leaves it as it ended; plan shows what it needs.
		log.Info("restart watcher: component ended; its restart policy leaves it", "reason", d.Reason)
	}
}

// checkRunning looks at a running instance's liveness probe and
// heartbeats; it returns a failure, or when to look again. An instance
// seen healthy counts towards ending its failure streak.
func (r *Reconciler) checkRunning(ctx context.Context, rec *state.Record, comp *config.Component, tr *tracked, obs providers.Observed) (*Failure, time.Time) {
	now := r.opts.Clock.Now()
	f, live, next := r.checkLiveness(ctx, rec, comp, tr, now)
	if f == nil {
		f = r.checkHeartbeats(rec, tr, now)
	}
	if f != nil {
		return f, time.Time{}
	}
	if live && obs.Health != providers.HealthUnhealthy && rec.Status == state.StatusRunning {
		before := tr.t.State()
		tr.t.Healthy()
		if tr.t.State() != before {
			r.save(rec.Address, tr)
		}
	}
	return nil, next
}

// checkLiveness runs the liveness probe when it is due. It returns the
// failure once the probe has failed often enough; live is false when the
// probe just failed; next is when the probe is next due (zero: no probe).
func (r *Reconciler) checkLiveness(ctx context.Context, rec *state.Record, comp *config.Component, tr *tracked, now time.Time) (f *Failure, live bool, next time.Time) {
	h := comp.Health
	if h == nil || !h.Liveness {
		return nil, true, time.Time{}
	}
	if tr.liveness == nil {
		r.startLiveness(ctx, rec, h, tr, now)
	}
	if tr.probe == nil {
		return nil, true, time.Time{}
	}
	live = true
	if !now.Before(tr.nextLive) {
		cctx, cancel := context.WithTimeout(ctx, h.Timeout.D())
		err := tr.probe.Check(cctx)
		cancel()
		tr.nextLive = now.Add(h.Interval.D())
		if f, failed := tr.liveness.Probe(err == nil); failed {
			return &f, false, time.Time{}
		}
		live = err == nil
	}
	return nil, live, tr.nextLive
}

// startLiveness sets up the liveness probe of the tracked instance; its
// first check is due after the health block's start period.
func (r *Reconciler) startLiveness(ctx context.Context, rec *state.Record, h *config.Health, tr *tracked, now time.Time) {
	tr.liveness = &Liveness{Threshold: h.FailureThreshold}
	host := "127.0.0.1"
	if hr, ok := mustProvider(r.opts.Providers, rec.Provider).(providers.HealthHostResolver); ok {
		if hh, err := hr.HealthHost(ctx, rec.Handle); err == nil {
			host = hh
		}
	}
	if p, err := health.FromConfig(h, host, rec.Ports[contract.EnvHealthPort], rec.WorkDir, nil); err == nil {
		tr.probe = p
	}
	tr.nextLive = now.Add(h.StartPeriod.D())
}

// checkHeartbeats reports a missed heartbeat of the tracked instance, as
// the control plane's registry sees it; only an instance that registered
// since it started, and has beaten, can miss one.
//
// Silence counts only after a grace of HeartbeatGrace of the component's
// heartbeat intervals from the start of the current stretch of
// observation: a control plane that was down heard nothing meanwhile. A
// miss whose last heartbeat is older than that stretch is not counted
// against max_retries: the component may have been beating at a control
// plane that was not there.
func (r *Reconciler) checkHeartbeats(rec *state.Record, tr *tracked, now time.Time) *Failure {
	if r.opts.Registrations == nil {
		return nil
	}
	for _, reg := range r.opts.Registrations() {
		if reg.Component != rec.Address || (reg.InstanceID != "" && reg.InstanceID != rec.InstanceID) {
			continue
		}
		if reg.Alive {
			tr.hb = reg.LastHeartbeat
			continue
		}
		if reg.Heartbeats == 0 || reg.LastHeartbeat.IsZero() || !reg.RegisteredAt.After(rec.StartedAt.Add(-time.Second)) {
			continue
		}
		if now.Sub(r.since) <= r.heartbeatGrace(reg) {
			continue
		}
		f := HeartbeatMissed(now.Sub(reg.LastHeartbeat))
		f.Unwatched = reg.LastHeartbeat.Before(r.since)
		return &f
	}
	return nil
}

// maxReconnect bounds the wait for a client to try its connection again:
// gRPC's default maximum reconnect backoff.
const maxReconnect = 2 * time.Minute

// heartbeatGrace is how long after the start of the current stretch of
// observation reg's silence is not held against it: HeartbeatGrace
// intervals, and when its last beat came before that stretch, twice the
// outage (up to maxReconnect): a client backing off its reconnects
// exponentially tries again within about 1.6 times how long it has
// failed.
func (r *Reconciler) heartbeatGrace(reg controlplane.Registration) time.Duration {
	g := HeartbeatGrace * heartbeatInterval(reg)
	if outage := r.since.Sub(reg.LastHeartbeat); outage > 0 {
		g = max(g, min(2*outage, maxReconnect))
	}
	return g
}

// heartbeatInterval is a registration's heartbeat interval: the cadence
// the control plane observed, or the one flowctl asks for.
func heartbeatInterval(reg controlplane.Registration) time.Duration {
	if c := reg.Cadence.D(); c > 0 {
		return c
	}
	return contract.DefaultHeartbeatInterval
}

// restartDue runs the restarts the pass found due, up to restartParallel
// at once, under one acquisition of the operation lock (it waits for an
// apply to finish); then, for each restarted component that says
// restart_dependents, its downstream components, one after another. It
// returns when to look again.
func (r *Reconciler) restartDue(ctx context.Context) time.Time {
	batch := r.due
	r.due = nil
	if len(batch) == 0 {
		return time.Time{}
	}
	lock, err := r.opts.Store.Acquire(ctx, state.LockOptions{Operation: lockOperation, Brief: true})
	if err != nil {
		// An apply holds the lock: the next look tries again.
		r.opts.Log.Debug("restart watcher: operation lock busy", "err", err, "restarts", len(batch))
		return time.Time{}
	}
	defer lock.Release()
	// Re-read under the lock: an apply may have changed them meanwhile
	// (a new instance, a new spec, a replacement under way or failed).
	type started struct {
		instance string
		err      error
		skip     bool
	}
	out := make([]started, len(batch))
	var run []restartRun
	for i, d := range batch {
		cur := r.readRecord(d.rec.Address)
		if ctx.Err() != nil || !sameInstance(cur, d.rec) {
			out[i].skip = true
			continue
		}
		st := d.tr.t.State()
		r.opts.Log.Info("restart watcher: restarting", "component", d.rec.Address, "reason", st.Reason, "attempt", st.Attempt, "delay", st.Delay)
		run = append(run, restartRun{cur: cur, comp: d.comp, reason: st.Reason, annotate: func(ev *state.Event) {
			ev.Attempt, ev.Delay = st.Attempt, st.Delay.String()
		}})
	}
	res := r.startMany(ctx, run)
	for i, d := range batch {
		if !out[i].skip {
			o := res[d.rec.Address]
			out[i].instance, out[i].err = o.instance, o.err
		}
	}
	var next time.Time
	for i, d := range batch {
		if out[i].skip {
			continue
		}
		t, ok := r.restarted(d.rec, d.tr, out[i].instance, out[i].err)
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
		if ok && d.comp.Restart.Dependents {
			r.restartDependents(ctx, d.rec.Address)
		}
	}
	return next
}

// restarted follows up a restart of rec: the watcher follows the new
// instance (newInstance, when there is one) from then on. A restart that
// failed (err: the new instance did not start, or exited before it was
// ready) is the next failure of the streak: counted, backed off, and a
// crash loop once the retries are spent. It returns when to look again,
// and whether the restart succeeded.
func (r *Reconciler) restarted(rec *state.Record, tr *tracked, newInstance string, err error) (time.Time, bool) {
	if newInstance != "" {
		tr.instance = newInstance
	}
	tr.liveness, tr.probe, tr.hb = nil, nil, time.Time{}
	tr.looked = r.opts.Clock.Now()
	if err != nil {
		r.opts.Log.Warn("restart watcher: restart failed", "component", rec.Address, "err", err)
		d := tr.t.Failed(StartFailed(err))
		r.save(rec.Address, tr)
		instance := rec.InstanceID
		if newInstance != "" {
			instance = newInstance
		}
		r.record(rec.Address, instance, d)
		if d.Action == ActRestart {
			return d.At, false
		}
		return time.Time{}, false
	}
	tr.t.Restarted()
	r.save(rec.Address, tr)
	return time.Time{}, true
}

// sameInstance reports whether cur, the record as read under the lock, is
// still the instance rec the watcher decided about, left to the watcher:
// not stopped, not being started or replaced by an apply, not respecified.
func sameInstance(cur, rec *state.Record) bool {
	return cur != nil && cur.InstanceID == rec.InstanceID && cur.SpecHash == rec.SpecHash &&
		cur.Status != state.StatusStopped && cur.Status != state.StatusCreating && len(cur.Handle) > 0
}

// restartDependents restarts, upstream first, every component downstream
// of addr (restart_dependents): they reconnect to its new instance.
func (r *Reconciler) restartDependents(ctx context.Context, addr string) {
	var recs []*state.Record
	if err := r.opts.Store.View(func(tx *state.Tx) error {
		var err error
		recs, err = tx.Components()
		return err
	}); err != nil {
		return
	}
	comps := map[string]*config.Component{}
	var nodes []string
	for _, rec := range recs {
		c, err := ComponentOf(rec)
		if err != nil {
			continue
		}
		comps[rec.Address] = c
		nodes = append(nodes, rec.Address)
	}
	g := graph.New(nodes, func(n string) []string { return comps[n].Upstreams() })
	down := map[string]bool{}
	for _, d := range g.Descendants(addr) {
		down[d] = true
	}
	order, err := g.Order()
	if err != nil {
		return
	}
	reason := "upstream " + addr + " restarted"
	for _, d := range order {
		if !down[d] || ctx.Err() != nil {
			continue
		}
		cur := r.readRecord(d)
		if cur == nil || cur.Status == state.StatusStopped || cur.Status == state.StatusCreating || len(cur.Handle) == 0 {
			continue
		}
		r.opts.Log.Info("restart watcher: restarting a dependent", "component", d, "reason", reason)
		newInstance, err := r.startAgain(ctx, cur, comps[d], reason, nil)
		if err != nil {
			r.opts.Log.Warn("restart watcher: restarting a dependent failed", "component", d, "err", err)
			continue
		}
		r.mu.Lock()
		if tr := r.trackers[d]; tr != nil {
			// A deliberate start, not a failure: the streak is over.
			tr.instance = newInstance
			tr.t.Reset()
			tr.liveness, tr.probe, tr.hb = nil, nil, time.Time{}
		}
		r.mu.Unlock()
	}
}

// openEnv fills comp's environment from cur's sealed one, if it has one.
func (r *Reconciler) openEnv(cur *state.Record, comp *config.Component) error {
	if cur.SealedEnv == "" {
		return nil
	}
	if r.opts.Open == nil {
		return errors.New("its environment is sealed and no secret opens it")
	}
	b, err := r.opts.Open(cur.SealedEnv)
	if err == nil {
		err = json.Unmarshal(b, &comp.Env)
	}
	if err != nil {
		return fmt.Errorf("open its sealed environment (token secret rotated?): %w", err)
	}
	return nil
}

// startAgain stops cur's instance and starts a new one of comp through the
// engine (a new instance ID and token, the same ports), recording one
// history event with reason; it returns the new instance ID, also when
// that instance failed. The caller holds the operation lock.
func (r *Reconciler) startAgain(ctx context.Context, cur *state.Record, comp *config.Component, reason string, annotate func(*state.Event)) (string, error) {
	if err := r.openEnv(cur, comp); err != nil {
		return "", err
	}
	opts := apply.Options{
		Operation: lockOperation, WorkDir: cur.WorkDir, Parallelism: 1, EventAtStart: true,
		// The restart holds the operation lock while the new instance
		// becomes ready: bounded, so that an apply waiting for it is not
		// held long.
		ReadyTimeout: restartReadyTimeout,
		Annotate: func(ev *state.Event) {
			ev.Reason = reason
			if annotate != nil {
				annotate(ev)
			}
		},
	}
	// The new instance's ID comes back even when it failed: the watcher
	// follows it from then on.
	return r.opts.Engine.Restart(ctx, cur, comp, reason, opts)
}

// restartRun is one component for startMany to restart.
type restartRun struct {
	cur      *state.Record
	comp     *config.Component
	reason   string
	annotate func(*state.Event)
}

// restartResult is how a restart of startMany went: the new instance's
// ID (also when it failed), and its error.
type restartResult struct {
	instance string
	err      error
}

// startMany is startAgain for several components at once: one run of the
// engine (one read of the state's records, restartParallel starts at a
// time) per work folder, instead of one each. The caller holds the
// operation lock. It returns each one's result by address.
func (r *Reconciler) startMany(ctx context.Context, runs []restartRun) map[string]restartResult {
	out := make(map[string]restartResult, len(runs))
	byDir := map[string][]restartRun{}
	var dirs []string
	for _, rr := range runs {
		if err := r.openEnv(rr.cur, rr.comp); err != nil {
			out[rr.cur.Address] = restartResult{err: err}
			continue
		}
		if byDir[rr.cur.WorkDir] == nil {
			dirs = append(dirs, rr.cur.WorkDir)
		}
		byDir[rr.cur.WorkDir] = append(byDir[rr.cur.WorkDir], rr)
	}
	for _, dir := range dirs {
		group := byDir[dir]
		if len(group) == 1 {
			rr := group[0]
			inst, err := r.startAgain(ctx, rr.cur, rr.comp, rr.reason, rr.annotate)
			out[rr.cur.Address] = restartResult{inst, err}
			continue
		}
		for addr, res := range r.startGroup(ctx, dir, group) {
			out[addr] = res
		}
	}
	return out
}

// startGroup restarts group, whose records share the work folder dir, in
// one run of the engine.
func (r *Reconciler) startGroup(ctx context.Context, dir string, group []restartRun) map[string]restartResult {
	out := make(map[string]restartResult, len(group))
	var pipeline string
	if err := r.opts.Store.View(func(tx *state.Tx) error { pipeline = tx.Meta().Pipeline; return nil }); err != nil {
		for _, rr := range group {
			out[rr.cur.Address] = restartResult{err: err}
		}
		return out
	}
	p := &plan.Plan{Pipeline: pipeline}
	desired := &config.Pipeline{Name: pipeline}
	byAddr := make(map[string]restartRun, len(group))
	for _, rr := range group {
		cur := rr.cur
		p.Changes = append(p.Changes, &plan.Change{
			Address: cur.Address, Action: plan.Restart, Reason: plan.Reason(rr.reason),
			Provider: cur.Provider, PriorProvider: cur.Provider, Handle: cur.Handle,
			SpecHash: cur.SpecHash, Spec: cur.Spec,
		})
		desired.Components = append(desired.Components, rr.comp)
		byAddr[cur.Address] = rr
	}
	opts := apply.Options{
		Operation: lockOperation, WorkDir: dir, Parallelism: restartParallel, EventAtStart: true,
		ReadyTimeout: restartReadyTimeout,
		Annotate: func(ev *state.Event) {
			if rr, ok := byAddr[ev.Address]; ok {
				ev.Reason = rr.reason
				if rr.annotate != nil {
					rr.annotate(ev)
				}
			}
		},
	}
	res, err := r.opts.Engine.Apply(ctx, nil, p, desired, opts)
	if res == nil {
		if err == nil {
			err = errors.New("the engine returned no outcome")
		}
		for _, rr := range group {
			out[rr.cur.Address] = restartResult{err: err}
		}
		return out
	}
	for _, o := range res.Outcomes {
		var e error
		switch {
		case o.Err != nil:
			e = o.Err
		case o.Skipped != "":
			e = errors.New(o.Skipped)
		}
		out[o.Address] = restartResult{o.InstanceID, e}
	}
	for _, rr := range group {
		if _, ok := out[rr.cur.Address]; !ok {
			out[rr.cur.Address] = restartResult{err: errors.New("the engine did not restart it")}
		}
	}
	return out
}

// readRecord reads one component record (nil when gone or unreadable).
func (r *Reconciler) readRecord(addr string) *state.Record {
	var rec *state.Record
	_ = r.opts.Store.View(func(tx *state.Tx) error {
		var err error
		rec, err = tx.Component(addr)
		return err
	})
	return rec
}

// statusWrite is a status to record on a component's record, if it is
// still the instance the watcher looked at, and a history row (when ev is
// not nil) to append in the same transaction.
type statusWrite struct {
	addr, instance, status, reason string
	code                           *int
	ev                             *state.Event
}

// flush writes, in one transaction, the trackers and statuses the pass
// queued (save, setStatus).
func (r *Reconciler) flush() {
	if len(r.unsaved) == 0 && len(r.statuses) == 0 {
		return
	}
	if len(r.statuses) == 0 && r.opts.Store.Busy() {
		// Trackers alone wait for a pass that finds the file quiet: an
		// apply writing it is not made to check it anew for them.
		return
	}
	saved := map[string][]byte{}
	for addr, tr := range r.unsaved {
		st := tr.t.State()
		st.Instance = tr.instance
		if b, err := st.Marshal(); err == nil {
			saved[addr] = b
		}
	}
	statuses := r.statuses
	r.unsaved, r.statuses = nil, nil
	err := r.opts.Store.Update(func(tx *state.Tx) error {
		for addr, b := range saved {
			if err := tx.PutData(DataNamespace, addr, b); err != nil {
				return err
			}
		}
		for _, w := range statuses {
			if err := putStatus(tx, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.opts.Log.Warn("restart watcher: save", "components", len(saved), "statuses", len(statuses), "err", err)
	}
}

// putStatus carries out w in tx.
func putStatus(tx *state.Tx, w statusWrite) error {
	if w.ev != nil {
		if err := tx.AppendHistory(w.ev); err != nil {
			return err
		}
	}
	cur, err := tx.Component(w.addr)
	if err != nil || cur == nil || cur.InstanceID != w.instance || cur.Status == state.StatusCreating || cur.Status == state.StatusStopped {
		return err
	}
	cur.Status, cur.StatusReason = w.status, w.reason
	if w.code != nil {
		c := *w.code
		cur.LastExitCode = &c
	}
	return tx.PutComponent(cur)
}

// save queues a tracker's state for the pass's next flush.
func (r *Reconciler) save(addr string, tr *tracked) {
	if r.unsaved == nil {
		r.unsaved = map[string]*tracked{}
	}
	r.unsaved[addr] = tr
}

// setStatus queues a status for the component's record, if it is still
// the instance the watcher looked at.
func (r *Reconciler) setStatus(addr, instance, status, reason string, code *int) {
	r.setStatusAndLog(addr, instance, status, reason, code, nil)
}

// setStatusAndLog is setStatus that also appends ev (when not nil) to the
// history in the same transaction.
func (r *Reconciler) setStatusAndLog(addr, instance, status, reason string, code *int, ev *state.Event) {
	r.statuses = append(r.statuses, statusWrite{addr: addr, instance: instance, status: status, reason: reason, code: code, ev: ev})
}

func (r *Reconciler) rand() Rand {
	if r.opts.Rand != nil {
		return r.opts.Rand
	}
	return defaultRand{}
}

// ComponentOf decodes the component a record was started from (its
// recorded spec; sensitive env values redacted).
func ComponentOf(rec *state.Record) (*config.Component, error) {
	var c config.Component
	if err := json.Unmarshal(rec.Spec, &c); err != nil {
		return nil, fmt.Errorf("decode the spec of %s: %w", rec.Address, err)
	}
	return &c, nil
}

func mustProvider(reg *providers.Registry, name string) providers.Provider {
	p, _ := reg.Get(name)
	return p
}

// defaultRand draws jitter from math/rand/v2's generator.
type defaultRand struct{}

func (defaultRand) Float64() float64 { return rand.Float64() }
