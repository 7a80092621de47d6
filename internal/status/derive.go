package status

import (
	"sort"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/watch"
)

// derive turns the facts into the report. It reads nothing but f.
func derive(f *facts) *Doc {
	doc := &Doc{
		Pipeline: f.meta.Pipeline, Lineage: f.meta.Lineage, Serial: f.meta.Serial,
		StateFile: f.stateFile, Time: f.now.UTC(), ControlPlane: f.controlPlane,
		Components: []Component{}, DataFlows: []DataFlow{},
	}
	byAddr := map[string]*state.Record{}
	for _, r := range f.records {
		byAddr[r.Address] = r
	}
	doc.DataFlows = liveEdges(f.dataFlows, byAddr)
	regsOf, unmanaged := splitRegistrations(f.regs)
	doc.Unmanaged = unmanaged

	desired := map[string]*config.Component{}
	if f.desired != nil {
		for _, c := range f.desired.Components {
			desired[c.Address()] = c
		}
	}
	for _, addr := range addresses(f.desired, f.records) {
		rec := byAddr[addr]
		row := componentStatus(addr, rec, desired[addr], f.observed[addr], regsOf[addr], f.controlPlane.Running, f.now)
		// A saved state that names another instance is about one the
		// watcher no longer follows.
		if st, ok := f.watched[addr]; ok && rec != nil && (st.Instance == "" || st.Instance == rec.InstanceID) {
			withWatcher(&row, rec, st, f.now)
		}
		doc.Components = append(doc.Components, row)
		if row.InState && isUp(row.State) && !f.controlPlane.Running {
			doc.ControlPlane.Needed = true
		}
	}
	return doc
}

// isUp reports whether a component in state s has an object that runs.
func isUp(s State) bool {
	return s == StateRunning || s == StateStarting || s == StateUnhealthy
}

// liveEdges keeps the data flows between components state still records:
// the relay's counters of destroyed ones are history, not flows.
func liveEdges(edges []relay.Edge, recs map[string]*state.Record) []DataFlow {
	out := []DataFlow{}
	for _, e := range edges {
		if recs[e.From] != nil && recs[e.To] != nil {
			out = append(out, DataFlow{From: e.From, To: e.To, Events: e.Events, Bytes: e.Bytes, LastAt: e.LastAt})
		}
	}
	return out
}

// splitRegistrations sorts registrations by the component they are
// attributed to, and lists apart those attributed to none.
func splitRegistrations(regs []controlplane.Registration) (map[string][]controlplane.Registration, []Unmanaged) {
	regsOf := map[string][]controlplane.Registration{}
	unmanaged := []Unmanaged{}
	for _, r := range regs {
		if r.Component == "" {
			unmanaged = append(unmanaged, Unmanaged{
				ServiceID: r.ServiceID, Protocol: string(r.Protocol), Type: r.Type, ClaimedID: r.ClaimedID,
				Alive: r.Alive, LastHeartbeat: r.LastHeartbeat, Auth: proofOf(&r), RemoteAddr: r.RemoteAddr,
			})
			continue
		}
		regsOf[r.Component] = append(regsOf[r.Component], r)
	}
	return regsOf, unmanaged
}

// addresses lists the rows to show: the pipeline's components in its
// order, then the records it no longer names, sorted.
func addresses(desired *config.Pipeline, recs []*state.Record) []string {
	var addrs []string
	inPipeline := map[string]bool{}
	if desired != nil {
		for _, c := range desired.Components {
			inPipeline[c.Address()] = true
			addrs = append(addrs, c.Address())
		}
	}
	var extra []string
	for _, r := range recs {
		if !inPipeline[r.Address] {
			extra = append(extra, r.Address)
		}
	}
	sort.Strings(extra)
	return append(addrs, extra...)
}

// componentStatus computes one row. The state comes first from what
// flowctl decided (stopped, crashloop), then from reality (gone, exited),
// then from readiness and the registry (starting, unhealthy).
func componentStatus(addr string, rec *state.Record, desired *config.Component, o *observation, regs []controlplane.Registration, serveUp bool, now time.Time) Component {
	row := Component{Address: addr, InState: rec != nil, InPipeline: desired != nil}
	if desired != nil {
		row.Executor = desired.Executor
	}
	if rec == nil {
		// Registrations left by a destroyed instance are not this row's.
		summarise(nil).fill(&row, now)
		row.State, row.Detail = StateMissing, "not applied"
		return row
	}
	rs := summarise(regs)
	rs.fill(&row, now)
	row.Executor = rec.Provider
	row.Restarts = rec.RestartCount
	v := stateOf(rec, o, rs, serveUp)
	row.State, row.Detail = v.state, v.detail
	if isUp(v.state) {
		// Health is that of an object that runs or starts; what the
		// registry last heard of one that ended is not.
		row.Health = healthOf(rs, o)
	}
	if v.running {
		withUptime(&row, rec, o, now)
	}
	return row
}

// registrations sums up a component's registrations.
type registrations struct {
	list []controlplane.Registration
	// latest is the most recent registration; nil when there is none.
	latest        *controlplane.Registration
	lastHeartbeat time.Time
	// alive and healthy: at least one registration is.
	alive, healthy bool
}

func summarise(regs []controlplane.Registration) registrations {
	s := registrations{list: regs}
	for i := range regs {
		r := &regs[i]
		if r.LastHeartbeat.After(s.lastHeartbeat) {
			s.lastHeartbeat = r.LastHeartbeat
		}
		if s.latest == nil || r.RegisteredAt.After(s.latest.RegisteredAt) {
			s.latest = r
		}
		s.alive = s.alive || r.Alive
		s.healthy = s.healthy || r.Healthy
	}
	return s
}

// registered reports whether the component registered at all.
func (s registrations) registered() bool { return len(s.list) > 0 }

// fill sets the row's registration columns.
func (s registrations) fill(row *Component, now time.Time) {
	row.RegisteredAs = make([]Registration, 0, len(s.list))
	for _, r := range s.list {
		row.RegisteredAs = append(row.RegisteredAs, Registration{
			ServiceID: r.ServiceID, Protocol: string(r.Protocol), AttributedBy: string(r.AttributedBy),
			Alive: r.Alive, Healthy: r.Healthy, Status: r.Status,
		})
	}
	row.LastHeartbeat = s.lastHeartbeat
	if !s.lastHeartbeat.IsZero() {
		age := now.Sub(s.lastHeartbeat).Seconds()
		row.HeartbeatAgeSeconds = &age
	}
	if s.latest != nil {
		row.Auth = proofOf(s.latest)
	}
}

// healthOf is the registry's word on health, else the executor's own
// check.
func healthOf(rs registrations, o *observation) Health {
	switch {
	case rs.registered() && rs.healthy:
		return HealthHealthy
	case rs.registered() && !rs.alive:
		return HealthNoHeartbeat
	case rs.latest != nil && rs.latest.Status != controlplane.StatusUnknown:
		return Health(rs.latest.Status)
	case rs.registered():
		return HealthUnhealthy
	case o != nil && o.err == nil && o.obs.Health != "":
		return Health(o.obs.Health)
	}
	return ""
}

// verdict is a component's state, why, and whether its object runs (for
// the uptime).
type verdict struct {
	state   State
	detail  string
	running bool
}

// stateOf decides the state of a component in the state file.
func stateOf(rec *state.Record, o *observation, rs registrations, serveUp bool) verdict {
	switch {
	case rec.Status == state.StatusStopped:
		return verdict{state: StateStopped, detail: rec.StatusReason}
	case rec.Status == state.StatusCrashloop:
		return verdict{state: StateCrashloop, detail: rec.StatusReason}
	case o == nil:
		return unobservedState(rec)
	case o.err != nil:
		return unreachableState(rec, o.err)
	case !o.obs.Exists:
		return verdict{state: StateMissing, detail: "the object is gone (removed outside flowctl?)"}
	case !o.obs.Running:
		return endedState(rec, o.obs, serveUp)
	}
	return runningState(rec, o.obs, rs)
}

// unobservedState is the state of a record without a handle: the start
// never returned one.
func unobservedState(rec *state.Record) verdict {
	switch rec.Status {
	case state.StatusCreating:
		return verdict{state: StateStarting, detail: "being created"}
	case state.StatusFailed:
		return verdict{state: StateFailed, detail: orDefault(rec.StatusReason, "its start failed")}
	}
	return verdict{state: StateMissing, detail: "no object recorded"}
}

// unreachableState is what the state recorded, and why there is no more:
// reality is out of reach (the engine is down).
func unreachableState(rec *state.Record, err error) verdict {
	return verdict{
		state:   recordedState(rec.Status),
		detail:  "executor unreachable: " + firstLine(err.Error()),
		running: rec.Status == state.StatusRunning,
	}
}

// endedState is the state of an object that exists but has ended: it
// restarts only if a control plane runs the watcher and the policy
// recorded with the spec brings it back; else an exit with code 0 is a
// stop, and any other end a failure that stays.
func endedState(rec *state.Record, obs providers.Observed, serveUp bool) verdict {
	v := verdict{state: StateFailed, detail: orDefault(obs.Detail, "exited")}
	restarts := restartsAfter(rec, obs)
	switch {
	case serveUp && restarts:
		v.state = StateRestarting
	case obs.Signal == "" && obs.ExitCode != nil && *obs.ExitCode == 0:
		v.state = StateStopped
	case restarts:
		v.detail += "; the control plane is not running: nothing restarts it"
	}
	return v
}

// runningState is the state of a running object: running unless readiness,
// a health check or the registry says otherwise.
func runningState(rec *state.Record, obs providers.Observed, rs registrations) verdict {
	v := verdict{state: StateRunning, running: true}
	latest := rs.latest
	switch {
	case rec.Status == state.StatusCreating:
		v.state, v.detail = StateStarting, "waiting for readiness"
	case rec.Status == state.StatusFailed:
		v.state, v.detail = StateUnhealthy, orDefault(rec.StatusReason, "did not become ready")
	case obs.Health == providers.HealthUnhealthy:
		v.state, v.detail = StateUnhealthy, "the executor's health check fails"
	case obs.Health == providers.HealthStarting:
		v.state, v.detail = StateStarting, "the executor's health check has not passed yet"
	case rs.registered() && !rs.alive:
		v.state, v.detail = StateUnhealthy, "registered, but no heartbeat within 3 intervals"
	case latest != nil && (latest.Status == controlplane.StatusUnhealthy || latest.Status == controlplane.StatusDegraded):
		v.state, v.detail = StateUnhealthy, "reports "+latest.Status
	case latest != nil && latest.Status == controlplane.StatusStarting:
		v.state, v.detail = StateStarting, "reports starting"
	}
	if v.detail == "" {
		// What the executor says of it (a cluster's ready/desired
		// replicas, restarts, node), when nothing above needs saying.
		v.detail = obs.Detail
	}
	return v
}

// withUptime sets the start time and uptime of a running component: the
// executor's start time when it tells one, else the recorded one.
func withUptime(row *Component, rec *state.Record, o *observation, now time.Time) {
	started := rec.StartedAt
	if o != nil && o.err == nil && !o.obs.StartedAt.IsZero() {
		started = o.obs.StartedAt
	}
	if started.IsZero() {
		return
	}
	row.StartedAt = started
	up := now.Sub(started).Seconds()
	row.UptimeSeconds = &up
}

// recordedState maps a recorded status to a reported state.
func recordedState(s string) State {
	switch s {
	case state.StatusRunning:
		return StateRunning
	case state.StatusCreating:
		return StateStarting
	case state.StatusFailed:
		return StateUnhealthy
	case state.StatusCrashloop:
		return StateCrashloop
	}
	return StateStopped
}

// restartsAfter reports whether the restart policy recorded with the
// component's spec brings it back after the end obs tells.
func restartsAfter(rec *state.Record, obs providers.Observed) bool {
	code := obs.ExitCode
	if obs.Signal != "" {
		code = nil
	}
	c, err := watch.ComponentOf(rec)
	if err != nil {
		return false
	}
	if c.Restart.Policy == "" {
		c.Restart.Policy = config.DefaultRestartPolicy
	}
	end := watch.Exited(-1) // unknown: taken as a failure
	if code != nil {
		end = watch.Exited(*code)
	}
	return watch.PolicyOf(c.Restart).Restarts(end)
}

// withWatcher completes a row with the restart watcher's view: a pending
// restart ("backoff: exited code=2, attempt 3 of 5, next attempt in 4s") or
// a crash loop with its last exit code and reason.
func withWatcher(row *Component, rec *state.Record, st watch.State, now time.Time) {
	c, err := watch.ComponentOf(rec)
	if err != nil {
		return
	}
	ws := watch.Restore(watch.PolicyOf(c.Restart), fixedClock(now), nil, st).Status()
	switch ws.Phase {
	case watch.PhaseBackoff:
		// An object seen running is reality's word over an attempt the
		// watcher saved as pending.
		if row.State != StateRunning {
			row.State, row.Detail = StateRestarting, ws.String()
		}
	case watch.PhaseCrashloop:
		row.State, row.Detail = StateCrashloop, ws.String()
	}
}

// fixedClock is a watch.Clock stopped at one time.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
