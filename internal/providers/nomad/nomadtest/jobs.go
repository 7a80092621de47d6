package nomadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// job is one registered job.
type job struct {
	spec           *api.Job // as registered and canonicalised
	namespace      string
	createIndex    uint64
	modifyIndex    uint64
	jobModifyIndex uint64
	version        uint64
	stop           bool
	submitTime     time.Time
	reschedules    int

	crashLoop  *int // exit code every start of its tasks ends with
	failChecks bool
}

func (j *job) id() string { return *j.spec.ID }

// view is the job as GET /v1/job/:id returns it.
func (e *Emulator) view(j *job) *api.Job {
	v := copyJob(j.spec)
	v.Namespace = new(j.namespace)
	v.Stop = new(j.stop)
	v.Status = new(e.status(j))
	v.Version = new(j.version)
	v.CreateIndex = new(j.createIndex)
	v.ModifyIndex = new(j.modifyIndex)
	v.JobModifyIndex = new(j.jobModifyIndex)
	v.SubmitTime = new(j.submitTime.UnixNano())
	return v
}

// status is Nomad's job status: running while an allocation runs, pending
// while one is still to run, dead once everything is over.
func (e *Emulator) status(j *job) string {
	var running, pending bool
	for _, a := range e.allocsOf(j) {
		switch {
		case a.client == api.AllocClientStatusRunning && a.desired == api.AllocDesiredStatusRun:
			running = true
		case a.client == api.AllocClientStatusPending && a.desired == api.AllocDesiredStatusRun:
			pending = true
		case a.client == api.AllocClientStatusFailed && !a.rescheduleAt.IsZero() && a.next == "":
			pending = true
		case !terminal(a.client):
			running = true
		}
	}
	switch {
	case running:
		return "running"
	case pending && !j.stop:
		return "pending"
	}
	return "dead"
}

func copyJob(j *api.Job) *api.Job {
	b, err := json.Marshal(j)
	if err != nil {
		panic(fmt.Sprintf("nomadtest: copy job: %v", err))
	}
	var out api.Job
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("nomadtest: copy job: %v", err))
	}
	return &out
}

// httpError answers as Nomad's HTTP agent does: the status, and the
// message as the body.
func httpError(w http.ResponseWriter, status int, format string, args ...any) {
	http.Error(w, fmt.Sprintf(format, args...), status)
}

func (e *Emulator) register(w http.ResponseWriter, r *http.Request, pathID string) {
	var req api.JobRegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "Failed to decode request body: %v", err)
		return
	}
	if req.Job == nil {
		httpError(w, http.StatusBadRequest, "Job must be specified")
		return
	}
	if req.Job.ID == nil || *req.Job.ID == "" {
		httpError(w, http.StatusBadRequest, "Job ID is required")
		return
	}
	if pathID != "" && pathID != *req.Job.ID {
		httpError(w, http.StatusBadRequest, "Job ID does not match name")
		return
	}
	if errs := validateJob(req.Job); len(errs) > 0 {
		httpError(w, http.StatusInternalServerError, "%s", multiError(errs))
		return
	}
	ns := namespaceOf(r)
	if req.Job.Namespace != nil && *req.Job.Namespace != "" {
		ns = *req.Job.Namespace
	}
	e.mu.Lock()
	resp, status, msg := e.registerLocked(ns, req.Job, req.EnforceIndex, req.JobModifyIndex)
	e.mu.Unlock()
	if status != 0 {
		httpError(w, status, "%s", msg)
		return
	}
	e.reply(w, resp, false)
}

// registerLocked registers spec in ns; e.mu is held.
func (e *Emulator) registerLocked(ns string, spec *api.Job, enforce bool, index uint64) (*api.JobRegisterResponse, int, string) {
	now := time.Now()
	e.advance(now)
	key := jobKey{ns, *spec.ID}
	cur := e.jobs[key]
	if enforce {
		switch {
		case index == 0 && cur != nil:
			return nil, http.StatusInternalServerError, fmt.Sprintf("%s %d: job already exists", api.RegisterEnforceIndexErrPrefix, index)
		case index != 0 && cur == nil:
			return nil, http.StatusInternalServerError, fmt.Sprintf("%s %d: job does not exist", api.RegisterEnforceIndexErrPrefix, index)
		case index != 0 && cur.jobModifyIndex != index:
			return nil, http.StatusInternalServerError, fmt.Sprintf("%s %d: job exists with conflicting job modify index: %d", api.RegisterEnforceIndexErrPrefix, index, cur.jobModifyIndex)
		}
	}
	stored := copyJob(spec)
	stored.Canonicalize()
	stored.Namespace = new(ns)
	e.index++
	j := &job{spec: stored, namespace: ns, createIndex: e.index, modifyIndex: e.index, jobModifyIndex: e.index, submitTime: now}
	if code, ok := e.crashLoops[*spec.ID]; ok {
		j.crashLoop = &code
	}
	j.failChecks = e.failingChecks[*spec.ID]
	if cur != nil {
		// A new version of the same job: its allocations are replaced.
		j.createIndex, j.version = cur.createIndex, cur.version+1
		for _, a := range e.allocsOf(cur) {
			e.stopAlloc(a, now, "alloc is being updated due to job update")
		}
	}
	e.jobs[key] = j
	e.place(j, now)
	e.notify()
	return &api.JobRegisterResponse{EvalID: e.nextID(), EvalCreateIndex: e.index, JobModifyIndex: j.jobModifyIndex}, 0, ""
}

func (e *Emulator) validate(w http.ResponseWriter, r *http.Request) {
	var req api.JobValidateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "Failed to decode request body: %v", err)
		return
	}
	if req.Job == nil {
		httpError(w, http.StatusBadRequest, "Job must be specified")
		return
	}
	errs := validateJob(req.Job)
	resp := api.JobValidateResponse{DriverConfigValidated: true, ValidationErrors: errs}
	if len(errs) > 0 {
		resp.Error = multiError(errs)
	}
	e.reply(w, resp, false)
}

func multiError(errs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d error(s) occurred:\n", len(errs))
	for _, s := range errs {
		fmt.Fprintf(&b, "\n* %s", s)
	}
	return b.String()
}

func (e *Emulator) readJob(w http.ResponseWriter, ns, id string) {
	e.mu.Lock()
	e.advance(time.Now())
	j := e.jobs[jobKey{ns, id}]
	var v *api.Job
	if j != nil {
		v = e.view(j)
	}
	e.mu.Unlock()
	if v == nil {
		httpError(w, http.StatusNotFound, "job not found")
		return
	}
	e.reply(w, v, true)
}

func (e *Emulator) listJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ns, prefix := namespaceOf(r), q.Get("prefix")
	withMeta := q.Get("meta") == "true"
	e.mu.Lock()
	e.advance(time.Now())
	out := []*api.JobListStub{}
	for k, j := range e.jobs {
		if (ns != "*" && k.namespace != ns) || !strings.HasPrefix(k.id, prefix) {
			continue
		}
		st := &api.JobListStub{
			ID: k.id, Name: deref(j.spec.Name), Namespace: k.namespace, Datacenters: j.spec.Datacenters,
			Type: deref(j.spec.Type), Priority: derefInt(j.spec.Priority), Stop: j.stop, Status: e.status(j),
			JobSummary:  e.summary(j),
			CreateIndex: j.createIndex, ModifyIndex: j.modifyIndex, JobModifyIndex: j.jobModifyIndex,
			SubmitTime: j.submitTime.UnixNano(),
		}
		if withMeta {
			st.Meta = j.spec.Meta
		}
		out = append(out, st)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	e.reply(w, out, true)
}

// summary counts the job's allocations by state, per group.
func (e *Emulator) summary(j *job) *api.JobSummary {
	s := &api.JobSummary{JobID: j.id(), Namespace: j.namespace, Summary: map[string]api.TaskGroupSummary{}, CreateIndex: j.createIndex, ModifyIndex: j.modifyIndex}
	for _, g := range j.spec.TaskGroups {
		s.Summary[*g.Name] = api.TaskGroupSummary{}
	}
	for _, a := range e.allocsOf(j) {
		g := s.Summary[a.group]
		switch a.client {
		case api.AllocClientStatusPending:
			g.Starting++
		case api.AllocClientStatusRunning:
			g.Running++
		case api.AllocClientStatusComplete:
			g.Complete++
		case api.AllocClientStatusFailed:
			g.Failed++
		case api.AllocClientStatusLost:
			g.Lost++
		}
		s.Summary[a.group] = g
	}
	return s
}

func (e *Emulator) deregister(w http.ResponseWriter, r *http.Request, ns, id string) {
	purge, _ := strconv.ParseBool(r.URL.Query().Get("purge"))
	e.mu.Lock()
	resp, ok := e.deregisterLocked(ns, id, purge)
	e.mu.Unlock()
	if !ok {
		httpError(w, http.StatusNotFound, "job not found")
		return
	}
	e.reply(w, resp, false)
}

// deregisterLocked stops (and with purge removes) a job; e.mu is held.
func (e *Emulator) deregisterLocked(ns, id string, purge bool) (*api.JobDeregisterResponse, bool) {
	now := time.Now()
	e.advance(now)
	key := jobKey{ns, id}
	j := e.jobs[key]
	if j == nil {
		return nil, false
	}
	e.index++
	for _, a := range e.allocsOf(j) {
		e.stopAlloc(a, now, "alloc is being stopped because the job is stopped")
	}
	if purge {
		delete(e.jobs, key)
	} else if !j.stop {
		j.stop = true
		j.jobModifyIndex, j.modifyIndex = e.index, e.index
		j.version++
	}
	e.notify()
	return &api.JobDeregisterResponse{EvalID: e.nextID(), EvalCreateIndex: e.index, JobModifyIndex: j.jobModifyIndex}, true
}

// find is the job of that ID, in whichever namespace (the first, by name).
func (e *Emulator) find(id string) *job {
	var keys []jobKey
	for k := range e.jobs {
		if k.id == id {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].namespace < keys[j].namespace })
	return e.jobs[keys[0]]
}

// Job returns the job of that ID as Nomad would show it, or nil.
func (e *Emulator) Job(id string) *api.Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(time.Now())
	if j := e.find(id); j != nil {
		return e.view(j)
	}
	return nil
}

// JobIDs lists the jobs registered (namespace/id), sorted.
func (e *Emulator) JobIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for k := range e.jobs {
		out = append(out, k.namespace+"/"+k.id)
	}
	sort.Strings(out)
	return out
}

// StopJob stops a job as `nomad job stop` does (no purge), outside flowctl.
func (e *Emulator) StopJob(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.find(id)
	if j == nil {
		return fmt.Errorf("nomadtest: no job %s", id)
	}
	e.deregisterLocked(j.namespace, id, false)
	return nil
}

// ModifyJob registers a changed version of a job, as someone running
// `nomad job run` outside flowctl would: a new job modify index and new
// allocations.
func (e *Emulator) ModifyJob(id string, change func(*api.Job)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.find(id)
	if j == nil {
		return fmt.Errorf("nomadtest: no job %s", id)
	}
	spec := copyJob(j.spec)
	change(spec)
	if errs := validateJob(spec); len(errs) > 0 {
		return fmt.Errorf("nomadtest: %s", multiError(errs))
	}
	if _, status, msg := e.registerLocked(j.namespace, spec, false, 0); status != 0 {
		return fmt.Errorf("nomadtest: %s", msg)
	}
	return nil
}

// CrashLoop makes every start of the tasks of job id end, CrashAfter
// later, with exitCode: of the job registered now (whose running tasks
// crash too) and of any registered under that ID later. Nomad then
// restarts them by the group's restart block, and reschedules or gives up.
func (e *Emulator) CrashLoop(id string, exitCode int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	e.advance(now)
	e.crashLoops[id] = exitCode
	for _, j := range e.jobs {
		if j.id() != id {
			continue
		}
		j.crashLoop = &exitCode
		for _, a := range e.allocsOf(j) {
			if a.running() {
				a.exitAt, a.exitCode = now.Add(e.opts.CrashAfter), exitCode
			}
		}
	}
	e.notify()
}

// StopCrashing ends a CrashLoop: tasks that start from now on keep running.
func (e *Emulator) StopCrashing(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.crashLoops, id)
	for _, j := range e.jobs {
		if j.id() == id {
			j.crashLoop = nil
		}
	}
}

// Crash makes the running tasks of the job exit once, now, with exitCode.
func (e *Emulator) Crash(id string, exitCode int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	e.advance(now)
	j := e.find(id)
	if j == nil {
		return fmt.Errorf("nomadtest: no job %s", id)
	}
	n := 0
	for _, a := range e.allocsOf(j) {
		if a.running() {
			a.exitAt, a.exitCode = now, exitCode
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("nomadtest: job %s has no running task to crash", id)
	}
	e.advance(now)
	e.notify()
	return nil
}

// FailChecks makes the service checks of job id fail (or pass again), of
// the job registered now and of any registered under that ID later. It
// decides the deployment health of allocations not judged yet: Nomad
// judges each allocation once.
func (e *Emulator) FailChecks(id string, failing bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failingChecks[id] = failing
	for _, j := range e.jobs {
		if j.id() == id {
			j.failChecks = failing
		}
	}
}

// --- validation ---

var (
	portLabel   = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)
	serviceName = regexp.MustCompile(`^(?i:[a-z0-9]|[a-z0-9][a-z0-9\-]{0,61}[a-z0-9])$`)
)

// validateJob returns what Nomad refuses in a job, in Nomad's words where
// they are known.
func validateJob(j *api.Job) []string {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	id := deref(j.ID)
	switch {
	case id == "":
		add("Missing job ID")
	case strings.ContainsAny(id, " \x00"):
		add("Job ID contains a space or null character")
	}
	if t := deref(j.Type); t != "" && t != api.JobTypeService {
		add("emulator: only service jobs are emulated, not %q", t)
	}
	for _, dc := range j.Datacenters {
		if dc == "" {
			add("Job datacenter must be non-empty string")
		}
	}
	if len(j.TaskGroups) == 0 {
		add("Missing job task groups")
	}
	groups := map[string]bool{}
	for i, g := range j.TaskGroups {
		name := deref(g.Name)
		if name == "" {
			add("Job task group %d missing name", i+1)
		} else if groups[name] {
			add("Job task group %d redefines '%s' from group %d", i+1, name, i)
		}
		groups[name] = true
		for _, s := range validateGroup(g) {
			add("Task group %s validation failed: %s", name, s)
		}
	}
	return errs
}

// problems collects validation messages in the order they are found.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// validateGroup checks a task group the way Nomad does, one block at a
// time, in the order Nomad reports them.
func validateGroup(g *api.TaskGroup) []string {
	var errs problems
	if g.Count != nil && *g.Count < 0 {
		errs.add("Task group count can't be negative")
	}
	if len(g.Tasks) == 0 {
		errs.add("Missing tasks for task group")
	}
	errs = append(errs, validateRestart(g.RestartPolicy)...)
	errs = append(errs, validateReschedule(g.ReschedulePolicy)...)
	errs = append(errs, validateUpdate(g.Update)...)
	labels, netErrs := validateNetworks(g.Networks)
	errs = append(errs, netErrs...)
	services := append([]*api.Service(nil), g.Services...)
	for _, t := range g.Tasks {
		services = append(services, t.Services...)
		for _, s := range validateTask(t, labels) {
			errs.add("Task %s validation failed: %s", t.Name, s)
		}
	}
	for _, s := range services {
		if s != nil {
			errs = append(errs, validateService(s, labels)...)
		}
	}
	return errs
}

// validateRestart checks a group's restart block.
func validateRestart(rp *api.RestartPolicy) problems {
	if rp == nil {
		return nil
	}
	var errs problems
	mode, attempts, interval, delay := deref(rp.Mode), derefInt(rp.Attempts), derefDur(rp.Interval), derefDur(rp.Delay)
	if mode != "delay" && mode != "fail" {
		errs.add("Unsupported restart mode: %q", mode)
	}
	if attempts == 0 && mode != "fail" {
		errs.add("Restart policy %q with %d attempts is ambiguous", mode, attempts)
	}
	if interval < 5*time.Second {
		errs.add("Interval can not be less than %v (got %v)", 5*time.Second, interval)
	}
	if time.Duration(attempts)*delay > interval {
		errs.add("Nomad can't restart the TaskGroup %v times in an interval of %v with a delay of %v", attempts, interval, delay)
	}
	return errs
}

// validateReschedule checks a group's reschedule block; one that never
// reschedules (no attempts, not unlimited) is not checked, as in Nomad.
func validateReschedule(rp *api.ReschedulePolicy) problems {
	if rp == nil || (!derefBool(rp.Unlimited) && derefInt(rp.Attempts) <= 0) {
		return nil
	}
	var errs problems
	delay := derefDur(rp.Delay)
	if delay < 5*time.Second {
		errs.add("Delay cannot be less than %v (got %v)", 5*time.Second, delay)
	}
	switch fn := deref(rp.DelayFunction); fn {
	case "constant":
	case "exponential", "fibonacci":
		if derefDur(rp.MaxDelay) < delay {
			errs.add("Max Delay cannot be less than Delay %v (got %v)", delay, derefDur(rp.MaxDelay))
		}
	default:
		errs.add("Invalid delay function %q, must be one of [constant exponential fibonacci]", fn)
	}
	if !derefBool(rp.Unlimited) && derefDur(rp.Interval) <= 0 {
		errs.add("Interval must be a non zero value if Attempts > 0")
	}
	return errs
}

// validateUpdate checks a group's update block.
func validateUpdate(u *api.UpdateStrategy) problems {
	if u == nil {
		return nil
	}
	var errs problems
	hc := deref(u.HealthCheck)
	if hc != "" && hc != "checks" && hc != "task_states" && hc != "manual" {
		errs.add("Invalid health check given: %q", hc)
	}
	minHealthy, deadline, progress := derefDur(u.MinHealthyTime), derefDur(u.HealthyDeadline), derefDur(u.ProgressDeadline)
	if minHealthy < 0 {
		errs.add("Minimum healthy time may not be less than zero: %v", minHealthy)
	}
	if deadline <= 0 {
		errs.add("Healthy deadline must be greater than zero: %v", deadline)
	}
	if progress != 0 && progress <= deadline {
		errs.add("Progress deadline must be zero or greater than the healthy deadline: %v", progress)
	}
	if minHealthy >= deadline {
		errs.add("Minimum healthy time must be less than healthy deadline: %v > %v", minHealthy, deadline)
	}
	return errs
}

// validateNetworks checks a group's network blocks and returns the port
// labels they define, which tasks and services may name.
func validateNetworks(networks []*api.NetworkResource) (map[string]bool, problems) {
	var errs problems
	labels := map[string]bool{}
	if len(networks) > 1 {
		errs.add("Only one network resource is allowed")
	}
	for _, nw := range networks {
		errs = append(errs, validatePorts(nw.ReservedPorts, true, labels)...)
		errs = append(errs, validatePorts(nw.DynamicPorts, false, labels)...)
	}
	return labels, errs
}

// validatePorts checks the reserved (static) or dynamic ports of a network
// block, adding their labels to labels.
func validatePorts(ports []api.Port, static bool, labels map[string]bool) problems {
	var errs problems
	for _, p := range ports {
		switch {
		case !portLabel.MatchString(p.Label):
			errs.add("Port label %q is not usable as NOMAD_PORT_<label>: use letters, digits and '_'", p.Label)
		case labels[p.Label]:
			errs.add("Port label %q already in use", p.Label)
		}
		labels[p.Label] = true
		if static && (p.Value < 1 || p.Value > 65535) {
			errs.add("Port %q has an invalid port %d", p.Label, p.Value)
		}
		if !static && p.Value != 0 {
			errs.add("Port %q is dynamic and cannot have a static value", p.Label)
		}
		if p.To < -1 || p.To > 65535 {
			errs.add("Port %q cannot be mapped to %d", p.Label, p.To)
		}
	}
	return errs
}

// validateService checks a service of the group or of one of its tasks;
// labels are the group's port labels.
func validateService(s *api.Service, labels map[string]bool) problems {
	var errs problems
	if !serviceName.MatchString(s.Name) {
		errs.add("Service name must be valid per RFC 1123 and can contain only alphanumeric characters or dashes: %q", s.Name)
	}
	if s.PortLabel != "" && !labels[s.PortLabel] {
		errs.add("Service %s: port label %q is not in the group's network", s.Name, s.PortLabel)
	}
	if s.Provider != "" && s.Provider != "nomad" && s.Provider != "consul" {
		errs.add("Service %s: unknown provider %q", s.Name, s.Provider)
	}
	for _, c := range s.Checks {
		errs = append(errs, validateCheck(s.Name, s.Provider, c)...)
	}
	return errs
}

// validateCheck checks one check of service svc, whose provider decides
// which check types are allowed.
func validateCheck(svc, provider string, c api.ServiceCheck) problems {
	var errs problems
	switch {
	case c.Type == "http" || c.Type == "tcp":
	case provider == "nomad":
		errs.add("Service %s: check %s: invalid check type (%q), must be one of http, tcp", svc, c.Name, c.Type)
	case c.Type != "script" && c.Type != "grpc":
		errs.add("Service %s: check %s: invalid type (%q)", svc, c.Name, c.Type)
	}
	if c.Type == "http" && c.Path == "" {
		errs.add("Service %s: check %s: http type must have http path", svc, c.Name)
	}
	if c.Interval < time.Second {
		errs.add("Service %s: check %s: minimum check interval is 1s (got %v)", svc, c.Name, c.Interval)
	}
	if c.Timeout < time.Second {
		errs.add("Service %s: check %s: minimum check timeout is 1s (got %v)", svc, c.Name, c.Timeout)
	}
	return errs
}

// validateTask checks a task; labels are the group's port labels.
func validateTask(t *api.Task, labels map[string]bool) []string {
	var errs problems
	if t.Name == "" {
		errs.add("Missing task name")
	}
	errs = append(errs, validateDriver(t, labels)...)
	errs = append(errs, validateResources(t.Resources)...)
	if t.KillTimeout != nil && *t.KillTimeout < 0 {
		errs.add("KillTimeout must be a positive value")
	}
	return errs
}

// validateDriver checks the task's driver and the config it requires.
func validateDriver(t *api.Task, labels map[string]bool) problems {
	var errs problems
	switch t.Driver {
	case "docker":
		if s, ok := t.Config["image"].(string); !ok || s == "" {
			errs.add("Missing required field image")
		}
		if ps, ok := t.Config["ports"].([]any); ok {
			for _, p := range ps {
				if l, _ := p.(string); !labels[l] {
					errs.add("Port %q not found, check network block", p)
				}
			}
		}
	case "raw_exec":
		if s, ok := t.Config["command"].(string); !ok || s == "" {
			errs.add("Missing required field command")
		}
	case "":
		errs.add("Missing task driver")
	default:
		errs.add("emulator: driver %q is not available on the emulated node (docker, raw_exec)", t.Driver)
	}
	return errs
}

// validateResources checks a task's resources block.
func validateResources(r *api.Resources) problems {
	if r == nil {
		return nil
	}
	var errs problems
	if r.CPU != nil && *r.CPU < 1 {
		errs.add("minimum CPU value is 1; got %d", *r.CPU)
	}
	if r.MemoryMB != nil && *r.MemoryMB < 10 {
		errs.add("minimum MemoryMB value is 10; got %d", *r.MemoryMB)
	}
	if r.MemoryMaxMB != nil && r.MemoryMB != nil && *r.MemoryMaxMB != 0 && *r.MemoryMaxMB < *r.MemoryMB {
		errs.add("MemoryMaxMB value (%d) should be larger than MemoryMB value (%d)", *r.MemoryMaxMB, *r.MemoryMB)
	}
	return errs
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}

func derefBool(b *bool) bool { return b != nil && *b }

func derefDur(d *time.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return *d
}
