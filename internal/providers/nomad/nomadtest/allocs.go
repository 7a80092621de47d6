package nomadtest

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"
)

// alloc is one allocation and the clock of its one task.
type alloc struct {
	id, name, namespace, jobID, group, task string
	jobCreateIndex, jobVersion              uint64
	createIndex, modifyIndex                uint64
	createTime, modifyTime                  time.Time

	desired, desiredDesc string
	client, clientDesc   string
	state                api.TaskState
	healthy              *bool
	healthTime           time.Time
	next, previous       string
	reschedules          []*api.RescheduleEvent
	ports                []api.PortMapping
	reserved, dynamic    []api.Port
	restart              api.RestartPolicy
	reschedule           api.ReschedulePolicy
	checks               bool

	// The clock: when the next thing happens (zero: never).
	startAt, exitAt, restartAt, healthAt, stopAt, rescheduleAt time.Time
	exitCode                                                   int
	windowStart                                                time.Time
	windowRestarts                                             int

	logs map[string][]byte
}

func (a *alloc) running() bool {
	return a.client == api.AllocClientStatusRunning && a.state.State == "running" && a.desired == api.AllocDesiredStatusRun
}

func terminal(client string) bool {
	switch client {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}

// allocsOf lists the allocations of this registration of the job, oldest
// first.
func (e *Emulator) allocsOf(j *job) []*alloc {
	var out []*alloc
	for _, a := range e.allocs {
		if a.jobID == j.id() && a.namespace == j.namespace && a.jobCreateIndex == j.createIndex {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].createIndex < out[k].createIndex })
	return out
}

// place creates the allocations the job's groups ask for; e.mu is held.
func (e *Emulator) place(j *job, now time.Time) {
	for _, g := range j.spec.TaskGroups {
		for i := range derefInt(g.Count) {
			e.newAlloc(j, g, i, now, "")
		}
	}
}

// nextPort hands out dynamic ports.
func (e *Emulator) nextPort() int {
	e.seq++
	return 20000 + e.seq%10000
}

func (e *Emulator) newAlloc(j *job, g *api.TaskGroup, i int, now time.Time, previous string) *alloc {
	e.index++
	a := &alloc{
		id: e.nextID(), name: fmt.Sprintf("%s.%s[%d]", j.id(), *g.Name, i), namespace: j.namespace, jobID: j.id(), group: *g.Name,
		jobCreateIndex: j.createIndex, jobVersion: j.version, createIndex: e.index, modifyIndex: e.index,
		createTime: now, modifyTime: now,
		desired: api.AllocDesiredStatusRun, client: api.AllocClientStatusPending,
		previous: previous, startAt: now.Add(e.opts.StartDelay),
		logs: map[string][]byte{},
	}
	if len(g.Tasks) > 0 {
		a.task = g.Tasks[0].Name
	}
	a.state = api.TaskState{State: "pending", Events: []*api.TaskEvent{event(now, api.TaskReceived, "Task received by client", nil)}}
	if g.RestartPolicy != nil {
		a.restart = *g.RestartPolicy
	}
	if g.ReschedulePolicy != nil {
		a.reschedule = *g.ReschedulePolicy
	}
	a.checks = hasChecks(g)
	for _, nw := range g.Networks {
		for _, p := range nw.ReservedPorts {
			a.reserved = append(a.reserved, p)
			a.ports = append(a.ports, api.PortMapping{Label: p.Label, Value: p.Value, To: p.To, HostIP: hostIP})
		}
		for _, p := range nw.DynamicPorts {
			p.Value = e.nextPort()
			a.dynamic = append(a.dynamic, p)
			a.ports = append(a.ports, api.PortMapping{Label: p.Label, Value: p.Value, To: p.To, HostIP: hostIP})
		}
	}
	e.allocs[a.id] = a
	return a
}

func hasChecks(g *api.TaskGroup) bool {
	for _, s := range g.Services {
		if s != nil && len(s.Checks) > 0 {
			return true
		}
	}
	for _, t := range g.Tasks {
		for _, s := range t.Services {
			if s != nil && len(s.Checks) > 0 {
				return true
			}
		}
	}
	return false
}

func event(t time.Time, typ, msg string, details map[string]string) *api.TaskEvent {
	return &api.TaskEvent{Type: typ, Time: t.UnixNano(), DisplayMessage: msg, Message: msg, Details: details}
}

// touch records a change of a; e.mu is held.
func (e *Emulator) touch(a *alloc, t time.Time) {
	e.index++
	a.modifyIndex, a.modifyTime = e.index, t
}

// stopAlloc asks a's task to stop; e.mu is held.
func (e *Emulator) stopAlloc(a *alloc, now time.Time, why string) {
	if a.desired != api.AllocDesiredStatusRun {
		return
	}
	a.desired, a.desiredDesc = api.AllocDesiredStatusStop, why
	a.startAt, a.restartAt, a.exitAt, a.healthAt, a.rescheduleAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if terminal(a.client) {
		return
	}
	if a.state.State == "running" {
		a.state.Events = append(a.state.Events, event(now, api.TaskKilling, "Sent interrupt", nil))
	}
	a.stopAt = now.Add(e.opts.StopDelay)
	e.touch(a, now)
}

// advance moves every allocation's clock to now; e.mu is held. Each step
// happens at its own time, so a state read later is the state at now.
func (e *Emulator) advance(now time.Time) {
	ids := sortedKeys(e.allocs)
	changed := false
	for range 10000 {
		var next *alloc
		var at time.Time
		for _, id := range ids {
			a := e.allocs[id]
			if t := a.due(); !t.IsZero() && !t.After(now) && (next == nil || t.Before(at)) {
				next, at = a, t
			}
		}
		if next == nil {
			break
		}
		e.step(next, at)
		changed = true
		ids = sortedKeys(e.allocs) // a reschedule adds one
	}
	if changed {
		e.notify()
	}
}

// due is when a's next step happens.
func (a *alloc) due() time.Time {
	var first time.Time
	for _, t := range []time.Time{a.stopAt, a.startAt, a.restartAt, a.exitAt, a.healthAt, a.rescheduleAt} {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// step performs a's step due at t.
func (e *Emulator) step(a *alloc, t time.Time) {
	defer e.touch(a, t)
	switch {
	case !a.stopAt.IsZero() && !a.stopAt.After(t):
		a.stopAt = time.Time{}
		if a.state.State != "dead" {
			a.state.State, a.state.FinishedAt = "dead", t
			a.state.Events = append(a.state.Events, event(t, api.TaskKilled, "Task successfully killed", nil))
		}
		if !terminal(a.client) {
			a.client, a.clientDesc = api.AllocClientStatusComplete, "All tasks have completed"
		}
	case !a.startAt.IsZero() && !a.startAt.After(t):
		a.startAt = time.Time{}
		e.start(a, t)
	case !a.restartAt.IsZero() && !a.restartAt.After(t):
		a.restartAt = time.Time{}
		e.start(a, t)
	case !a.exitAt.IsZero() && !a.exitAt.After(t):
		a.exitAt = time.Time{}
		e.exit(a, t)
	case !a.healthAt.IsZero() && !a.healthAt.After(t):
		a.healthAt = time.Time{}
		healthy := true
		if j := e.jobOf(a); j != nil && j.failChecks && a.checks {
			healthy = false
		}
		a.healthy, a.healthTime = &healthy, t
	case !a.rescheduleAt.IsZero() && !a.rescheduleAt.After(t):
		a.rescheduleAt = time.Time{}
		e.replace(a, t)
	}
}

// jobOf is a's job, if a belongs to its current registration.
func (e *Emulator) jobOf(a *alloc) *job {
	j := e.jobs[jobKey{a.namespace, a.jobID}]
	if j == nil || j.createIndex != a.jobCreateIndex {
		return nil
	}
	return j
}

func (e *Emulator) start(a *alloc, t time.Time) {
	a.state.State, a.state.StartedAt = "running", t
	a.state.Events = append(a.state.Events, event(t, api.TaskStarted, "Task started by client", nil))
	a.client, a.clientDesc = api.AllocClientStatusRunning, "Tasks are running"
	if a.healthy == nil {
		a.healthAt = t.Add(e.opts.HealthyAfter)
	}
	if j := e.jobOf(a); j != nil && j.crashLoop != nil {
		a.exitAt, a.exitCode = t.Add(e.opts.CrashAfter), *j.crashLoop
	}
}

// exit ends a's task with a.exitCode and applies the restart policy.
func (e *Emulator) exit(a *alloc, t time.Time) {
	code := a.exitCode
	a.healthAt = time.Time{}
	a.state.Events = append(a.state.Events, event(t, api.TaskTerminated, fmt.Sprintf("Exit Code: %d", code), map[string]string{"exit_code": strconv.Itoa(code)}))
	a.state.Events[len(a.state.Events)-1].ExitCode = code
	rp := a.restart
	attempts, interval, delay, mode := derefInt(rp.Attempts), derefDur(rp.Interval), derefDur(rp.Delay), deref(rp.Mode)
	if a.windowStart.IsZero() || t.Sub(a.windowStart) > interval {
		a.windowStart, a.windowRestarts = t, 0
	}
	switch {
	case a.windowRestarts < attempts:
		a.windowRestarts++
		a.restartAt = t.Add(delay)
		e.restarting(a, t, fmt.Sprintf("Restart within policy (attempt %d of %d)", a.windowRestarts, attempts))
	case mode == "delay" && attempts > 0:
		a.restartAt = a.windowStart.Add(interval)
		a.windowStart = time.Time{}
		e.restarting(a, t, "Exceeded allowed attempts, applying a delay")
	default:
		msg := fmt.Sprintf("Exceeded allowed attempts %d in interval %v and mode is %q", attempts, interval, mode)
		a.state.Events = append(a.state.Events, event(t, api.TaskNotRestarting, msg, map[string]string{"fails_task": "true", "restart_reason": msg}))
		a.state.State, a.state.Failed, a.state.FinishedAt = "dead", true, t
		a.client, a.clientDesc = api.AllocClientStatusFailed, "Failed tasks"
		if a.healthy == nil {
			unhealthy := false
			a.healthy, a.healthTime = &unhealthy, t
		}
		e.planReschedule(a, t)
	}
}

func (e *Emulator) restarting(a *alloc, t time.Time, reason string) {
	a.state.Restarts++
	a.state.LastRestart = t
	a.state.State = "pending"
	a.state.Events = append(a.state.Events, event(t, api.TaskRestarting, reason, map[string]string{"restart_reason": reason}))
	a.client, a.clientDesc = api.AllocClientStatusPending, "Tasks are restarting"
}

// planReschedule decides whether the failed a is placed again.
func (e *Emulator) planReschedule(a *alloc, t time.Time) {
	j := e.jobOf(a)
	if j == nil || j.stop || a.desired != api.AllocDesiredStatusRun {
		return
	}
	rp := a.reschedule
	if !derefBool(rp.Unlimited) && j.reschedules >= derefInt(rp.Attempts) {
		return
	}
	j.reschedules++
	delay := derefDur(rp.Delay)
	if e.opts.RescheduleDelay > 0 {
		delay = e.opts.RescheduleDelay
	}
	a.rescheduleAt = t.Add(delay)
}

// replace places a new allocation for the failed a.
func (e *Emulator) replace(a *alloc, t time.Time) {
	j := e.jobOf(a)
	if j == nil {
		return
	}
	var g *api.TaskGroup
	for _, tg := range j.spec.TaskGroups {
		if *tg.Name == a.group {
			g = tg
		}
	}
	if g == nil {
		return
	}
	n := e.newAlloc(j, g, 0, t, a.id)
	n.name = a.name
	n.reschedules = append(append([]*api.RescheduleEvent(nil), a.reschedules...), &api.RescheduleEvent{RescheduleTime: t.UnixNano(), PrevAllocID: a.id, PrevNodeID: e.node.ID})
	a.next = n.id
}

// --- views and endpoints ---

func (e *Emulator) stub(a *alloc) *api.AllocationListStub {
	ts := a.state
	ts.Events = append([]*api.TaskEvent(nil), a.state.Events...)
	st := &api.AllocationListStub{
		ID: a.id, EvalID: a.id, Name: a.name, Namespace: a.namespace, NodeID: e.node.ID, NodeName: e.node.Name,
		JobID: a.jobID, JobType: api.JobTypeService, JobVersion: a.jobVersion, TaskGroup: a.group,
		DesiredStatus: a.desired, DesiredDescription: a.desiredDesc, ClientStatus: a.client, ClientDescription: a.clientDesc,
		TaskStates: map[string]*api.TaskState{a.task: &ts}, NextAllocation: a.next,
		CreateIndex: a.createIndex, ModifyIndex: a.modifyIndex, CreateTime: a.createTime.UnixNano(), ModifyTime: a.modifyTime.UnixNano(),
	}
	if a.healthy != nil {
		h := *a.healthy
		st.DeploymentStatus = &api.AllocDeploymentStatus{Healthy: &h, Timestamp: a.healthTime, ModifyIndex: a.modifyIndex}
	}
	if len(a.reschedules) > 0 {
		st.RescheduleTracker = &api.RescheduleTracker{Events: a.reschedules}
	}
	return st
}

func (e *Emulator) full(a *alloc) *api.Allocation {
	st := e.stub(a)
	out := &api.Allocation{
		ID: st.ID, Namespace: st.Namespace, EvalID: st.EvalID, Name: st.Name, NodeID: st.NodeID, NodeName: st.NodeName,
		JobID: st.JobID, TaskGroup: st.TaskGroup,
		DesiredStatus: st.DesiredStatus, DesiredDescription: st.DesiredDescription,
		ClientStatus: st.ClientStatus, ClientDescription: st.ClientDescription,
		TaskStates: st.TaskStates, DeploymentStatus: st.DeploymentStatus, NextAllocation: st.NextAllocation,
		PreviousAllocation: a.previous, RescheduleTracker: st.RescheduleTracker,
		CreateIndex: st.CreateIndex, ModifyIndex: st.ModifyIndex, AllocModifyIndex: st.ModifyIndex,
		CreateTime: st.CreateTime, ModifyTime: st.ModifyTime,
		AllocatedResources: &api.AllocatedResources{Shared: api.AllocatedSharedResources{
			Ports:    append([]api.PortMapping(nil), a.ports...),
			Networks: []*api.NetworkResource{{IP: hostIP, ReservedPorts: a.reserved, DynamicPorts: a.dynamic}},
		}},
	}
	if j := e.jobs[jobKey{a.namespace, a.jobID}]; j != nil && j.createIndex == a.jobCreateIndex {
		out.Job = e.view(j)
	}
	return out
}

func (e *Emulator) jobAllocations(w http.ResponseWriter, r *http.Request, ns, id string) {
	all, _ := strconv.ParseBool(r.URL.Query().Get("all"))
	e.mu.Lock()
	e.advance(time.Now())
	out := []*api.AllocationListStub{}
	j := e.jobs[jobKey{ns, id}]
	for _, a := range e.allocs {
		// As Nomad: without all, the allocations of an earlier job of the
		// same ID are left out; with no job, every one is listed.
		if a.jobID != id || a.namespace != ns || (!all && j != nil && a.jobCreateIndex != j.createIndex) {
			continue
		}
		out = append(out, e.stub(a))
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, k int) bool { return out[i].CreateIndex > out[k].CreateIndex })
	e.reply(w, out, true)
}

func (e *Emulator) readAlloc(w http.ResponseWriter, id string) {
	e.mu.Lock()
	e.advance(time.Now())
	var out *api.Allocation
	if a := e.allocs[id]; a != nil {
		out = e.full(a)
	}
	e.mu.Unlock()
	if out == nil {
		httpError(w, http.StatusNotFound, "alloc not found")
		return
	}
	e.reply(w, out, true)
}

// Allocations lists the allocations of the current registration of the
// job, oldest first, as Nomad lists them.
func (e *Emulator) Allocations(jobID string) []*api.AllocationListStub {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(time.Now())
	j := e.find(jobID)
	if j == nil {
		return nil
	}
	var out []*api.AllocationListStub
	for _, a := range e.allocsOf(j) {
		out = append(out, e.stub(a))
	}
	return out
}

// WriteLog appends text to a stream ("stdout" or "stderr") of the task of
// the job's newest allocation, as if the task had written it.
func (e *Emulator) WriteLog(jobID, stream, text string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(time.Now())
	j := e.find(jobID)
	if j == nil {
		return fmt.Errorf("nomadtest: no job %s", jobID)
	}
	as := e.allocsOf(j)
	if len(as) == 0 {
		return fmt.Errorf("nomadtest: job %s has no allocation", jobID)
	}
	a := as[len(as)-1]
	a.logs[stream] = append(a.logs[stream], text...)
	e.notify()
	return nil
}
